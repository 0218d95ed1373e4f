/** One problem in a machine description. */
export interface MachineConfigIssue {
  /** Dotted path of the offending key, e.g. `memory.banks[1].size`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
  /** 1-based line in the source file, where known. */
  readonly line?: number;
}

/**
 * A machine description that failed to parse or validate. The message has one line per issue:
 * `machine arm64-soc: memory.banks[1].size: expected a size like "4G" or a number, got "4Q"`.
 */
export class MachineConfigError extends Error {
  override readonly name = "MachineConfigError";

  constructor(
    /** The machine's name when the file has one, else the source (file name). */
    readonly machine: string,
    /** Where the description came from (file path or `builtin:<name>`). */
    readonly source: string,
    readonly issues: readonly MachineConfigIssue[],
  ) {
    super(
      issues
        .map(
          (i) =>
            `machine ${machine}: ${i.path ? `${i.path}: ` : ""}${i.message}${i.line !== undefined ? ` (${source}:${i.line})` : ""}`,
        )
        .join("\n"),
    );
  }
}
