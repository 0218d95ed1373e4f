import { alignUp, formatBytes, hex, KernelError, SZ_4G } from "@dmakit/core";

/** A host bridge window BARs are placed in (CPU addresses). */
export interface BarWindow {
  readonly start: number;
  readonly size: number;
  readonly prefetch: boolean;
}

/**
 * Places BARs in a host bridge's windows, in the order asked, each naturally aligned: prefetchable
 * BARs go to a prefetchable window when one fits, else to a plain one; 32-bit BARs stay below 4 GiB.
 * Deterministic, so a machine's BAR addresses never change between runs.
 *
 * Kernel counterpart: the firmware's or `pci_assign_unassigned_resources()`'s resource assignment
 * (drivers/pci/setup-bus.c). The model has no bridge windows per port, only the host bridge's.
 */
export class PciBarAllocator {
  private readonly next: number[];

  constructor(
    readonly owner: string,
    readonly windows: readonly BarWindow[],
  ) {
    this.next = windows.map((w) => w.start);
  }

  /** CPU address for a BAR of `size`; ENOSPC names the BAR when no window has room. */
  place(what: string, size: number, prefetch: boolean, bits: 32 | 64): number {
    const order = this.windows
      .map((w, i) => ({ w, i }))
      .filter(({ w }) => prefetch || !w.prefetch)
      .sort((a, b) => Number(b.w.prefetch) - Number(a.w.prefetch));
    for (const { w, i } of order) {
      const at = alignUp(this.next[i] as number, size);
      if (at + size > w.start + w.size) continue;
      if (bits === 32 && at + size > SZ_4G) continue;
      this.next[i] = at + size;
      return at;
    }
    throw new KernelError(
      "ENOSPC",
      `pci ${this.owner}: no room for ${what} (${formatBytes(size)}, ${bits}-bit${prefetch ? ", prefetchable" : ""}) in windows ${this.windows
        .map((w) => `${hex(w.start)}+${hex(w.size)}${w.prefetch ? " pref" : ""}`)
        .join(", ")}`,
    );
  }
}
