/**
 * What a dma-debug report is about. The first group are the checks of `kernel/dma/debug.c`; the
 * last five are the model's cache and ownership checks, which the kernel cannot make.
 * Model-only.
 */
export type DmaDebugReportKind =
  // check_unmap
  | "free-invalid-address"
  | "free-not-allocated"
  | "free-different-size"
  | "free-wrong-function"
  | "free-different-cpu-address"
  | "free-sg-count"
  | "free-different-direction"
  | "map-error-not-checked"
  // debug_dma_map_single / map_phys / map_sg
  | "map-invalid-area"
  | "map-vmalloc"
  | "map-kernel-text"
  // check_sync
  | "sync-not-allocated"
  | "sync-outside-range"
  | "sync-different-direction"
  | "sync-read-only-for-cpu"
  | "sync-write-only-to-device"
  | "sync-sg-count"
  // leaks, cachelines, segments
  | "leak-at-unbind"
  | "cacheline-overlap"
  | "cacheline-overlap-overflow"
  | "sg-segment-too-long"
  | "sg-segment-boundary"
  // beyond the kernel (cache model + ownership)
  | "device-read-stale"
  | "cpu-read-stale"
  | "writeback-clobber"
  | "invalidate-dirty"
  | "cpu-touched-device-owned";

/**
 * One dma-debug report as data; `message` is the log text after `"DMA-API: <driver> <dev>: "`.
 * Model-only (the kernel only prints).
 */
export interface DmaDebugReport {
  /** Running number of the report on this machine. */
  readonly seq: number;
  readonly kind: DmaDebugReportKind;
  /** `dev_name(dev)`, or `"NULL"`. */
  readonly device: string;
  /** `dev_driver_string(dev)` at the time: the driver, else the bus name, else `""`. */
  readonly driver: string;
  /** DMA address of the mapping involved (or of the offending call), null when none. */
  readonly dmaAddr: number | null;
  /** Size of that mapping (or of the call), null when none. */
  readonly size: number | null;
  /** The physical address the report is about (a cache line, a CPU access, a mapping's start), null when none. */
  readonly phys: number | null;
  /** DMA direction of the mapping involved, null when none. */
  readonly dir: number | null;
  readonly message: string;
  /** The DMA API call the driver should have made (`"dma_sync_single_for_device"`, ...), null when none applies. */
  readonly missingCall: string | null;
  /** Whether it reached the log (`num_errors` / `all_errors` / `driver_filter` decide, as in the kernel). */
  readonly printed: boolean;
}
