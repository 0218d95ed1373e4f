import {
  calcMapTypeAndDist,
  type Device,
  defineTracepoint,
  devIsPci,
  hex,
  KernelError,
  PCI_P2PDMA_MAP_BUS_ADDR,
  type PciDev,
  PlatformDevice,
  pciDevId,
} from "@dmakit/core";
import { devIommuGet, type IommuFaultRecord, type IommuHardware, type IommuTranslation } from "@dmakit/iommu";
import type { CpuCache, DeviceAccessOptions, PhysMem } from "@dmakit/mm-pages";
import type { DmaSystem } from "./DmaSystem.js";
import { devDmaState } from "./dmaDevice.js";

/**
 * Why a device's DMA did not complete:
 * - `iommu-fault`: the device's IOMMU refused the transaction (no mapping, wrong permission, a
 *   blocked or aborting context); {@link DmaEngineEvent.fault} is the record the IOMMU queued.
 * - `unreachable`: the address leads nowhere: beyond the bus's dma-ranges, a physical hole, or a
 *   peer's BAR the root complex does not forward peer-to-peer traffic to.
 * Model-only.
 */
export type DmaEngineEventKind = "iommu-fault" | "unreachable";

/** One failed DMA transaction, as data (never thrown). Model-only. */
export interface DmaEngineEvent {
  /** Running number of the event on this engine. */
  readonly seq: number;
  readonly kind: DmaEngineEventKind;
  readonly device: string;
  /** True for a device write to memory. */
  readonly write: boolean;
  /** DMA (bus / IO virtual) address of the first byte that did not transfer. */
  readonly dmaAddr: number;
  /** Bytes of the request left untransferred from {@link dmaAddr} on. */
  readonly size: number;
  /** The physical address the transaction reached (after translation), null when none. */
  readonly phys: number | null;
  /** The IOMMU's fault record for `iommu-fault`, else null. */
  readonly fault: IommuFaultRecord | null;
  /** Human-readable cause. */
  readonly reason: string;
  /** Simulated time of the failure, ns. */
  readonly timeNs: number;
}

/** What {@link DmaEngine.read} / {@link DmaEngine.write} return. Model-only. */
export interface DmaTransfer {
  /** True when every byte transferred. */
  readonly ok: boolean;
  /** Bytes transferred (from the start of the request; a failure stops the transfer). */
  readonly bytes: number;
  /** The failure, when `ok` is false. */
  readonly event: DmaEngineEvent | null;
}

/** Counters of a {@link DmaEngine}. Model-only. */
export interface DmaEngineStats {
  /** Bus transactions issued (bursts, each translated once when the device is behind an IOMMU). */
  transactions: number;
  bytesRead: number;
  bytesWritten: number;
  /** Transactions the IOMMU refused. */
  faults: number;
  /** Transactions that reached nothing. */
  unreachable: number;
  /** IOMMU translations supplied by the IOTLB / walked from the tables. */
  iotlbHits: number;
  iotlbMisses: number;
  /** Bytes that went to a peer's BAR (in-switch bus addresses or through the host bridge). */
  peerBytes: number;
}

/** Options of a {@link DmaEngine}. Model-only. */
export interface DmaEngineOptions {
  /**
   * Largest bus transaction in bytes, a power of two (default 4096). Each transaction is aligned to
   * it and translated once by the IOMMU, so it sets how many IOTLB lookups a transfer costs (PCIe
   * MPS is 128–512 bytes, AXI bursts 64–4096).
   */
  readonly burst?: number;
  /**
   * Transfer rate in bytes per simulated nanosecond (8 = 8 GB/s). When set, each transfer advances
   * the machine's clock by its duration and, with a trace sink attached, records a complete event
   * on the device's lane. Absent: transfers take no simulated time.
   */
  readonly bytesPerNs?: number;
  /** Called for every transaction the IOMMU refuses: the interrupt line to the IOMMU driver. */
  readonly onIommuFault?: (fault: IommuFaultRecord, engine: DmaEngine) => void;
  /** Events kept by {@link DmaEngine.events} (oldest dropped first); default 1024. */
  readonly maxEvents?: number;
}

/** Fields of the `dmakit:dma_engine` trace event. Model-only. */
export type DmaEngineTraceFields = {
  dev: string;
  /** `"read"` or `"write"`. */
  op: string;
  dma: number;
  size: number;
  bytes: number;
  ok: boolean;
};

/**
 * The device side of a transfer, as a complete event on the device's lane. Not a kernel tracepoint.
 * Model-only.
 */
export const TRACE_DMA_ENGINE = defineTracepoint<DmaEngineTraceFields>(
  "dmakit:dma_engine",
  (f) => `${f.dev} ${f.op} dma=${hex(f.dma)} size=${f.size} done=${f.bytes}${f.ok ? "" : " FAILED"}`,
);

/** A peer BAR the initiator may reach: CPU and bus ranges, and whether a switch routes it directly. */
interface PeerBar {
  readonly owner: PciDev;
  readonly cpuAddr: number;
  readonly busAddr: number;
  readonly size: number;
  /** Routed inside a switch (no ACS redirect on the path): bus address, never reaches the IOMMU. */
  readonly inSwitch: boolean;
}

const NO_BARS: readonly PeerBar[] = [];

/**
 * A device's DMA engine: issues reads and writes at DMA addresses the way the hardware would and
 * moves the bytes. Not a kernel object (the kernel only programs descriptors); this is the device
 * half the DMA API exists for.
 *
 * A transfer is cut into bus transactions of at most {@link DmaEngineOptions.burst} bytes. Each is
 * routed as on the bus:
 * 1. PCI initiator, address inside a peer's BAR bus range below a common switch with no ACS
 *    redirect: the switch delivers it to the peer (a P2PDMA bus address; the IOMMU never sees it).
 * 2. Behind an IOMMU (the device's probed `iommu_device` has hardware): `hardware.translate` with
 *    the device's StreamID / requester id. Identity and blocked domains are the hardware's business
 *    (bypass / abort), exactly as programmed. A refusal is an `iommu-fault` event; the IOMMU queued
 *    its record and its driver logs it (wire {@link DmaEngineOptions.onIommuFault} to the driver's
 *    interrupt handler).
 * 3. No IOMMU: a PCI address inside a host-bridge window goes to that BAR through the root complex
 *    (only if the host bridge forwards peer traffic); otherwise the bus's dma-ranges (`dma_to_phys`
 *    through `dev.dmaRangeMap`) give the physical address.
 *
 * The physical address then reaches RAM through the CPU cache model (`deviceRead`/`deviceWrite`:
 * snooping only if the device is coherent, so missing cache maintenance shows), or MMIO (a peer's
 * BAR memory) through `PhysMem`. A hole is an `unreachable` event and a kernel-log line, as the
 * bus error the hardware would raise. Device-side failures never throw: the transfer stops at the
 * failing transaction and the result says how many bytes moved. Only misuse of this API throws
 * (`EINVAL` for a bad address or length, `ENODEV` for a device never bound by `dmaConfigure`).
 *
 * Model differences: no ATS / PASID traffic, no ordering or concurrency (each call completes before
 * returning), a 32-bit device issuing an address above its mask is refused as `unreachable`
 * rather than truncated on the wires.
 * Model-only.
 */
export class DmaEngine {
  readonly dev: Device;
  readonly system: DmaSystem;
  readonly burst: number;
  readonly stats: DmaEngineStats = {
    transactions: 0,
    bytesRead: 0,
    bytesWritten: 0,
    faults: 0,
    unreachable: 0,
    iotlbHits: 0,
    iotlbMisses: 0,
    peerBytes: 0,
  };
  private readonly phys: PhysMem;
  private readonly cache: CpuCache;
  private readonly access: DeviceAccessOptions;
  private readonly bytesPerNs: number;
  private readonly onIommuFault: DmaEngineOptions["onIommuFault"];
  private readonly maxEvents: number;
  private readonly evts: DmaEngineEvent[] = [];
  private seq = 0;
  private peerBarsCache: readonly PeerBar[] | null = null;
  // The last failure of the current transfer (set by the routing helpers).
  private failed: DmaEngineEvent | null = null;

  constructor(dev: Device, options: DmaEngineOptions = {}) {
    this.dev = dev;
    this.system = devDmaState(dev).system;
    const burst = options.burst ?? 4096;
    if (!Number.isSafeInteger(burst) || burst < 1 || (burst & (burst - 1)) !== 0 || burst > 2 ** 30)
      throw new KernelError(
        "EINVAL",
        `dma-engine: ${dev.name}: burst ${burst} is not a power of two ≤ 1 GiB`,
      );
    this.burst = burst;
    const bpn = options.bytesPerNs ?? 0;
    if (!(bpn >= 0) || !Number.isFinite(bpn))
      throw new KernelError("EINVAL", `dma-engine: ${dev.name}: bytesPerNs ${bpn} is not a finite rate ≥ 0`);
    this.bytesPerNs = bpn;
    this.onIommuFault = options.onIommuFault;
    this.maxEvents = options.maxEvents ?? 1024;
    this.phys = this.system.phys;
    this.cache = this.system.cache;
    this.access = { coherent: dev.dmaCoherent, device: dev.name };
  }

  /** The device reads `dst.length` bytes at `dmaAddr` into `dst` (a DMA read of memory). */
  read(dmaAddr: number, dst: Uint8Array): DmaTransfer {
    return this.transfer(dmaAddr, dst, false);
  }

  /** The device writes `src` at `dmaAddr` (a DMA write to memory). */
  write(dmaAddr: number, src: Uint8Array): DmaTransfer {
    return this.transfer(dmaAddr, src, true);
  }

  /**
   * A device-internal copy (a copy engine / blitter): reads `size` bytes at `srcAddr`, writes them
   * at `dstAddr`. Stops at the first failure; `bytes` counts bytes written.
   */
  copy(srcAddr: number, dstAddr: number, size: number): DmaTransfer {
    const buf = new Uint8Array(size);
    const r = this.read(srcAddr, buf);
    if (!r.ok) return { ok: false, bytes: 0, event: r.event };
    return this.write(dstAddr, buf);
  }

  /** Failed transactions, oldest first (at most {@link DmaEngineOptions.maxEvents}). */
  events(): readonly DmaEngineEvent[] {
    return this.evts;
  }

  /** Takes and empties the event list. */
  drainEvents(): DmaEngineEvent[] {
    return this.evts.splice(0, this.evts.length);
  }

  // ------------------------------------------------------------------------------------------

  private transfer(dmaAddr: number, buf: Uint8Array, write: boolean): DmaTransfer {
    const len = buf.length;
    if (!Number.isSafeInteger(dmaAddr) || dmaAddr < 0 || dmaAddr + len > Number.MAX_SAFE_INTEGER)
      throw new KernelError(
        "EINVAL",
        `dma-engine: ${this.dev.name}: DMA address ${String(dmaAddr)}+${len} is not an address`,
      );
    const startNs = this.system.clock.now();
    this.failed = null;
    const done = len === 0 ? 0 : this.route(dmaAddr, buf, write);
    if (write) this.stats.bytesWritten += done;
    else this.stats.bytesRead += done;
    const event = this.failed as DmaEngineEvent | null;
    if (this.bytesPerNs > 0) {
      const dur = Math.ceil(done / this.bytesPerNs);
      const tracer = this.system.tracer;
      if (tracer?.enabled)
        tracer.complete(
          TRACE_DMA_ENGINE,
          startNs,
          dur,
          {
            dev: this.dev.name,
            op: write ? "write" : "read",
            dma: dmaAddr,
            size: len,
            bytes: done,
            ok: event === null,
          },
          this.dev.name,
        );
      if (dur > 0) this.system.clock.advance(dur);
    }
    return { ok: event === null, bytes: done, event };
  }

  /** Moves the bytes; returns how many moved before the first failure (recorded in `this.failed`). */
  private route(dmaAddr: number, buf: Uint8Array, write: boolean): number {
    const dev = this.dev;
    const len = buf.length;
    const mask = dev.dmaMask ?? 0xffff_ffff;
    if (dmaAddr + len - 1 > mask) {
      // The engine has as many address lines as its mask says; the kernel must never hand it more.
      const at = Math.max(dmaAddr, mask + 1);
      const done = at - dmaAddr;
      if (done > 0) {
        const n = this.route(dmaAddr, buf.subarray(0, done), write);
        if (n < done) return n;
      }
      this.fail(
        "unreachable",
        write,
        at,
        len - done,
        null,
        null,
        `beyond the device's ${hex(mask)} DMA mask`,
      );
      return done;
    }
    const bars = devIsPci(dev) ? this.peerBars(dev) : NO_BARS;
    const p = devIommuGet(dev);
    const hw = p?.iommuDev?.hardware ?? null;
    if (bars.length === 0 && hw === null && dev.dmaRangeMap === null) {
      // Fast path: a direct device on a bus without offsets: one memory access for all bursts.
      const burst = this.burst;
      this.stats.transactions += Math.floor((dmaAddr + len - 1) / burst) - Math.floor(dmaAddr / burst) + 1;
      return this.memAccess(dmaAddr, dmaAddr, buf, 0, len, write);
    }
    const sid = hw === null ? 0 : streamIdOf(dev);
    const burst = this.burst;
    let off = 0;
    // Bursts that land physically contiguous are merged into one memory access: the model's cost is
    // per access, not per burst (the bus still counts every burst as a transaction).
    let runPhys = -1;
    let runDma = 0;
    let runOff = 0;
    let runLen = 0;
    while (off < len) {
      const addr = dmaAddr + off;
      let n = Math.min(len - off, burst - (addr % burst));
      let phys = -1;
      let peer = false;
      if (bars.length > 0) {
        const b = barAt(bars, addr, true);
        if (b?.inSwitch === true) {
          n = Math.min(n, b.busAddr + b.size - addr);
          phys = b.cpuAddr + (addr - b.busAddr);
          peer = true;
        }
      }
      if (phys < 0) {
        if (hw !== null) {
          const t = this.translate(hw, sid, addr, n, write);
          if (!t.ok) {
            const moved = runLen > 0 ? this.memAccess(runPhys, runDma, buf, runOff, runLen, write) : 0;
            if (moved < runLen) return runOff + moved;
            this.stats.faults++;
            this.fail("iommu-fault", write, addr, len - off, null, t.fault, t.fault.message);
            this.onIommuFault?.(t.fault, this);
            return off;
          }
          phys = t.phys;
          n = t.len;
        } else {
          const r = this.directPhys(dev, addr, n);
          if (r < 0) {
            const moved = runLen > 0 ? this.memAccess(runPhys, runDma, buf, runOff, runLen, write) : 0;
            if (moved < runLen) return runOff + moved;
            const why =
              r === -2
                ? "a peer BAR the root complex does not forward peer-to-peer traffic to"
                : "outside the bus's dma-ranges";
            this.fail("unreachable", write, addr, len - off, null, null, why);
            return off;
          }
          phys = r;
          n = this.directLen;
          peer = this.directPeer;
        }
      }
      this.stats.transactions++;
      if (peer) this.stats.peerBytes += n;
      if (runLen > 0 && phys === runPhys + runLen) {
        runLen += n;
      } else {
        if (runLen > 0) {
          const moved = this.memAccess(runPhys, runDma, buf, runOff, runLen, write);
          if (moved < runLen) return runOff + moved;
        }
        runPhys = phys;
        runDma = addr;
        runOff = off;
        runLen = n;
      }
      off += n;
    }
    const moved = this.memAccess(runPhys, runDma, buf, runOff, runLen, write);
    return runOff + moved;
  }

  private translate(
    hw: IommuHardware,
    streamId: number,
    iova: number,
    size: number,
    write: boolean,
  ): IommuTranslation {
    const t = hw.translate({ streamId, iova, size, write });
    if (t.ok) {
      if (t.iotlbHit) this.stats.iotlbHits++;
      else this.stats.iotlbMisses++;
    }
    return t;
  }

  // Out-values of directPhys (kept in fields so the hot loop allocates nothing).
  private directLen = 0;
  private directPeer = false;

  /**
   * Physical address of `addr` for a device without an IOMMU (or -1 unreachable, -2 peer BAR not
   * forwarded); `directLen` is how many bytes from there stay contiguous (≤ n).
   */
  private directPhys(dev: Device, addr: number, n: number): number {
    this.directPeer = false;
    if (devIsPci(dev)) {
      for (const w of dev.hostBridge.windows) {
        if (addr >= w.busStart && addr < w.busStart + w.size) {
          const b = barAt(this.peerBars(dev), addr, true);
          if (b !== null && !dev.hostBridge.p2pdmaAllowlisted && b.owner !== dev) return -2;
          this.directLen = Math.min(n, w.busStart + w.size - addr);
          this.directPeer = b !== null;
          return w.cpuStart + (addr - w.busStart);
        }
      }
    }
    const map = dev.dmaRangeMap;
    if (map === null) {
      this.directLen = n;
      return addr;
    }
    for (const m of map) {
      if (m.size === 0) break;
      const o = addr - m.dmaStart;
      if (addr >= m.dmaStart && o < m.size) {
        this.directLen = Math.min(n, m.size - o);
        return m.cpuStart + o;
      }
    }
    return -1;
  }

  /**
   * Accesses `[phys, phys + n)` for `buf[off, off + n)`: RAM through the cache model, MMIO through
   * the memory bus; stops at a hole (an `unreachable` event). Returns bytes moved.
   */
  private memAccess(
    phys: number,
    dmaAddr: number,
    buf: Uint8Array,
    off: number,
    n: number,
    write: boolean,
  ): number {
    const mem = this.phys;
    let done = 0;
    while (done < n) {
      const at = phys + done;
      const bank = mem.bankAt(at);
      let k: number;
      if (bank !== undefined) {
        k = Math.min(n - done, bank.start + bank.size - at);
        const piece = k === buf.length ? buf : buf.subarray(off + done, off + done + k);
        if (write) this.cache.deviceWrite(at, piece, this.access);
        else this.cache.deviceRead(at, piece, this.access);
      } else {
        const region = mem.mmioAt(at);
        if (region === undefined) {
          this.fail(
            "unreachable",
            write,
            dmaAddr + done,
            buf.length - off - done,
            at,
            null,
            `nothing at physical ${hex(at)} (bus decode error)`,
          );
          return done;
        }
        k = Math.min(n - done, region.start + region.size - at);
        const piece = buf.subarray(off + done, off + done + k);
        if (write) mem.write(at, piece);
        else mem.read(at, piece);
      }
      done += k;
    }
    return done;
  }

  private fail(
    kind: DmaEngineEventKind,
    write: boolean,
    dmaAddr: number,
    size: number,
    phys: number | null,
    fault: IommuFaultRecord | null,
    reason: string,
  ): void {
    const e: DmaEngineEvent = {
      seq: this.seq++,
      kind,
      device: this.dev.name,
      write,
      dmaAddr,
      size,
      phys,
      fault,
      reason,
      timeNs: this.system.clock.now(),
    };
    this.failed = e;
    if (kind === "unreachable") {
      this.stats.unreachable++;
      // What the bus error would make the kernel print (AER / SError reporting, simplified).
      this.system.log.err(
        this.dev.name,
        `DMA ${write ? "write" : "read"} at ${hex(dmaAddr)}${phys !== null ? ` (phys ${hex(phys)})` : ""} failed: ${reason}`,
      );
    }
    this.evts.push(e);
    if (this.evts.length > this.maxEvents) this.evts.shift();
  }

  /** BARs of the other endpoints on the initiator's host bridge, with their routing from it. */
  private peerBars(dev: PciDev): readonly PeerBar[] {
    if (this.peerBarsCache !== null) return this.peerBarsCache;
    const out: PeerBar[] = [];
    for (const other of dev.hostBridge.devices()) {
      if (other === dev || other.bars.length === 0) continue;
      const inSwitch = calcMapTypeAndDist(other, dev).mapType === PCI_P2PDMA_MAP_BUS_ADDR;
      for (const b of other.bars)
        out.push({ owner: other, cpuAddr: b.cpuAddr, busAddr: b.busAddr, size: b.size, inSwitch });
    }
    this.peerBarsCache = out;
    return out;
  }
}

/** The BAR whose bus (`bus`) or CPU range holds `addr`, or null. */
function barAt(bars: readonly PeerBar[], addr: number, bus: boolean): PeerBar | null {
  for (const b of bars) {
    const start = bus ? b.busAddr : b.cpuAddr;
    if (addr >= start && addr < start + b.size) return b;
  }
  return null;
}

/** The id the device's transactions carry: its first fwspec id, a platform StreamID, or the PCI requester id. */
function streamIdOf(dev: Device): number {
  const ids = devIommuGet(dev)?.fwspec?.ids;
  if (ids !== undefined && ids.length > 0) return ids[0] as number;
  if (devIsPci(dev)) return pciDevId(dev);
  if (dev instanceof PlatformDevice && dev.streamIds.length > 0) return dev.streamIds[0] as number;
  return 0;
}
