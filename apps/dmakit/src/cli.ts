import { writeFileSync } from "node:fs";
import { ChromeTraceWriter, formatBytes, isKernelError } from "@dmakit/core";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { formatColumns } from "./formatColumns.js";
import { builtinMachineNames, loadBuiltinMachine, resolveMachine } from "./loadMachine.js";
import { Machine } from "./Machine.js";
import { MachineConfigError } from "./MachineConfigError.js";
import type { MachineConfig } from "./machineSchema.js";
import { DEFAULT_SCENARIO, ScenarioUnsupportedError, scenarios } from "./scenarios/index.js";
import type { ScenarioOptions } from "./scenarios/Scenario.js";

/** Where the CLI writes; tests pass collectors, `main.ts` passes the process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/**
 * Exit codes: 0 ok; 1 the machine could not be assembled or the run failed (bytes that did not
 * verify, a dma-debug finding on a clean run, an injected bug nobody caught); 2 bad input (usage,
 * unknown scenario or bug, invalid machine).
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The machine `run` boots when `--machine` is not given and the scenario names none. */
export const DEFAULT_MACHINE = "arm64-soc";

class UsageError extends Error {}
class BootError extends Error {}

function parsePolicy(value: string): "strict" | "lazy" {
  if (value !== "strict" && value !== "lazy")
    throw new InvalidArgumentError(`expected strict or lazy, got "${value}"`);
  return value;
}

function parseSeed(value: string): number {
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff)
    throw new InvalidArgumentError(`expected an integer 0..4294967295, got "${value}"`);
  return n;
}

/** One line per machine: name, arch, RAM, device count, coherency, description. */
function machineSummary(c: MachineConfig): string[] {
  const ram = c.memory.banks.reduce((s, b) => s + b.size, 0);
  const devices = c.platform.devices.length + (c.pci?.endpoints.length ?? 0);
  return [
    c.name,
    c.arch,
    formatBytes(ram),
    `${devices} devices`,
    c.coherent ? "coherent" : "non-coherent",
    c.description,
  ];
}

function columns(rows: string[][]): string {
  return formatColumns(rows)
    .map((l) => `${l}\n`)
    .join("");
}

/**
 * Runs the dmakit CLI on `argv` (the user's arguments, without `node main.js`) and returns the exit
 * code. Never calls `process.exit`, so tests run it in-process.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let code = EXIT_OK;
  const program = new Command("dmakit")
    .description("Simulated machines for the Linux DMA buffer-sharing stack")
    .exitOverride()
    .showHelpAfterError("(run dmakit --help for usage)")
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) });

  program
    .command("machines")
    .description("list the built-in machines")
    .option("--json", "print the validated descriptions as JSON")
    .action((opts: { json?: boolean }) => {
      const configs = builtinMachineNames().map(loadBuiltinMachine);
      if (opts.json) io.stdout(`${JSON.stringify(configs, null, 2)}\n`);
      else io.stdout(columns(configs.map(machineSummary)));
    });

  program
    .command("run")
    .description("boot a machine and run a scenario on it")
    .argument("[scenario]", `scenario to run (${[...scenarios.keys()].join(", ")})`, DEFAULT_SCENARIO)
    .option(
      "-m, --machine <name|file>",
      `built-in machine name or a .yaml description (default: the scenario's, else "${DEFAULT_MACHINE}")`,
    )
    .option("-s, --seed <n>", "seed of the machine's random generator", parseSeed, 1)
    .option("-t, --trace <file>", "write a Chrome trace-event JSON of the run (opens in Perfetto UI)")
    .option("--inject-bug <bug>", "inject a driver bug the scenario knows (see the scenario's list)")
    .option("--policy <policy>", "override the IOMMU policy for the run: strict | lazy", parsePolicy)
    .option("--json", "print the result as JSON")
    .action(
      (
        name: string,
        opts: {
          machine?: string;
          seed: number;
          trace?: string;
          json?: boolean;
          injectBug?: string;
          policy?: "strict" | "lazy";
        },
      ) => {
        const scenario = scenarios.get(name);
        if (scenario === undefined)
          throw new UsageError(
            `unknown scenario "${name}" (known scenarios: ${[...scenarios.keys()].join(", ")})`,
          );
        if (opts.injectBug !== undefined && !scenario.bugs.has(opts.injectBug))
          throw new UsageError(
            `scenario ${scenario.name} knows no bug "${opts.injectBug}"` +
              (scenario.bugs.size > 0
                ? ` (known: ${[...scenario.bugs.keys()].join(", ")})`
                : " (it takes no --inject-bug)"),
          );
        const options: ScenarioOptions = {
          ...(opts.injectBug !== undefined ? { injectBug: opts.injectBug } : {}),
          ...(opts.policy !== undefined ? { policy: opts.policy } : {}),
        };
        let config = resolveMachine(opts.machine ?? scenario.defaultMachine ?? DEFAULT_MACHINE);
        if (opts.policy !== undefined) config = { ...config, iommuPolicy: opts.policy };
        if (scenario.prepare !== undefined) config = scenario.prepare(config, options);
        let machine: Machine;
        try {
          machine = Machine.boot(config, { seed: opts.seed });
        } catch (e) {
          if (isKernelError(e)) throw new BootError(e.message);
          throw e;
        }
        const writer =
          opts.trace !== undefined ? new ChromeTraceWriter({ processName: `dmakit ${config.name}` }) : null;
        if (writer !== null) machine.tracer.attach(writer);
        const result = scenario.run(machine, options);
        if (writer !== null && opts.trace !== undefined) {
          // The kernel log as instant events on its own lane, after the run's own events.
          for (const r of machine.log.records())
            writer.write({
              name: r.prefix === "" ? "printk" : r.prefix,
              system: "printk",
              ph: "i",
              tsNs: r.timeNs,
              lane: "dmesg",
              fields: { level: r.level, message: r.message },
            });
          writeFileSync(opts.trace, `${writer.toString()}\n`);
        }
        io.stdout(opts.json ? `${JSON.stringify(result.json, null, 2)}\n` : result.text);
        if (!result.ok) code = EXIT_FAILURE;
      },
    );

  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version "errors" are successful exits; everything else is a usage error.
      code = e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    } else if (
      e instanceof UsageError ||
      e instanceof MachineConfigError ||
      e instanceof ScenarioUnsupportedError
    ) {
      io.stderr(`dmakit: ${e.message.replace(/\n/g, "\ndmakit: ")}\n`);
      code = EXIT_USAGE;
    } else if (e instanceof BootError) {
      io.stderr(`dmakit: boot failed: ${e.message}\n`);
      code = EXIT_FAILURE;
    } else if (isKernelError(e)) {
      io.stderr(`dmakit: run failed: ${e.message}\n`);
      code = EXIT_FAILURE;
    } else {
      throw e;
    }
  }
  return code;
}
