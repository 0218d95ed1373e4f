/**
 * Thrown by a scenario that cannot run on the machine it was given (e.g. `p2p` on a machine without
 * a PCI switch). Bad input, not a failed run: the CLI prints the message and exits 2.
 */
export class ScenarioUnsupportedError extends Error {
  override readonly name = "ScenarioUnsupportedError";
}
