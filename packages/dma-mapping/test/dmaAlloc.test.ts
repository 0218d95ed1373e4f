import { bitMask, type Device, isKernelError, PAGE_SIZE, SZ_1M, SZ_4G, SZ_64K } from "@dmakit/core";
import {
  __GFP_COMP,
  __GFP_DMA32,
  __GFP_NOWARN,
  __GFP_ZERO,
  type CmaArea,
  GFP_ATOMIC,
  GFP_KERNEL,
  VMALLOC_START,
} from "@dmakit/mm-pages";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DMA_ATOMIC_POOLS,
  DMA_ATTR_NO_KERNEL_MAPPING,
  DMA_BIDIRECTIONAL,
  DMA_TO_DEVICE,
  type DmaAlloc,
  type DmaDebugHooks,
  dmaAllocAttrs,
  dmaAllocCoherent,
  dmaAllocNoncoherent,
  dmaAllocPages,
  dmaAllocWc,
  dmaDebugInit,
  dmaFreeAttrs,
  dmaFreeCoherent,
  dmaFreeNoncoherent,
  dmaFreePages,
  dmaFreeWc,
  dmamAllocCoherent,
  dmamFreeCoherent,
} from "../src/index.js";
import {
  ALLOC_CMA,
  ALLOC_RAM,
  type MachineOptions,
  makeMachine,
  NORMAL_START,
  ZONE_DMA_END,
  ZONE_DMA_START,
} from "./helpers/machine.js";

/** The allocation tests' arm64-like machine: ZONE_DMA, DMA32 and NORMAL RAM, two CMA areas, atomic pools. */
function allocMachine(o: MachineOptions = {}) {
  const m = makeMachine({ layout: ALLOC_RAM, cma: ALLOC_CMA, atomicPools: true, userMemory: true, ...o });
  const [defaultCma, camCma] = m.mem.cma as [CmaArea, CmaArea];
  return { ...m, um: m.um!, defaultCma, camCma };
}

function inRange(addr: number, size: number, base: number, end: number): boolean {
  return addr >= base && addr + size <= end;
}

/** A dma-debug stand-in recording the alloc/free hook calls. */
function recordingDebug(): { hooks: DmaDebugHooks; calls: string[] } {
  const calls: string[] = [];
  const rec =
    (name: string) =>
    (...args: unknown[]) =>
      calls.push(`${name}(${args.slice(1).map(String).join(",")})`);
  const hooks = new Proxy({} as DmaDebugHooks, { get: (_t, p) => rec(String(p)) });
  return { hooks, calls };
}

describe("dma_alloc_attrs on dma-direct: zone by coherent mask", () => {
  it("a 30-bit device gets ZONE_DMA memory, a 32-bit one memory below 4 GiB, a 64-bit one ZONE_NORMAL", () => {
    const m = allocMachine({ coherent: true });
    const d30 = m.device("dev30", { mask: bitMask(30), dmaCoherent: true });
    const d32 = m.device("dev32", { mask: bitMask(32), dmaCoherent: true });
    const d64 = m.device("dev64", { mask: bitMask(64), dmaCoherent: true });
    for (const size of [PAGE_SIZE, SZ_64K]) {
      const a = dmaAllocCoherent(d30, size, GFP_KERNEL) as DmaAlloc;
      expect(inRange(a.dmaHandle, size, ZONE_DMA_START, ZONE_DMA_END)).toBe(true);
      const b = dmaAllocCoherent(d32, size, GFP_KERNEL) as DmaAlloc;
      expect(b.dmaHandle + size).toBeLessThanOrEqual(SZ_4G);
      const c = dmaAllocCoherent(d64, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
      expect(c.dmaHandle).toBeGreaterThanOrEqual(NORMAL_START);
      // A coherent device's buffer is used through the linear map.
      expect(m.vm.virtToPhys(a.cpuAddr)).toBe(a.dmaHandle);
      dmaFreeCoherent(d30, size, a.cpuAddr, a.dmaHandle);
      dmaFreeCoherent(d32, size, b.cpuAddr, b.dmaHandle);
      dmaFreeCoherent(d64, PAGE_SIZE, c.cpuAddr, c.dmaHandle);
    }
  });

  it("a bus_dma_limit narrower than the mask and zone modifiers from the caller are honoured / ignored", () => {
    const m = allocMachine({ coherent: true });
    const dev = m.device("bus30", { mask: bitMask(64), dmaCoherent: true });
    dev.busDmaLimit = bitMask(30);
    const a = dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL | __GFP_DMA32) as DmaAlloc;
    expect(inRange(a.dmaHandle, PAGE_SIZE, ZONE_DMA_START, ZONE_DMA_END)).toBe(true);
    dmaFreeCoherent(dev, PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    // A 64-bit device asking for __GFP_DMA32 still gets ZONE_NORMAL: dma_alloc_attrs strips it.
    const d64 = m.device("dev64", { mask: bitMask(64), dmaCoherent: true });
    const b = dmaAllocCoherent(d64, PAGE_SIZE, GFP_KERNEL | __GFP_DMA32) as DmaAlloc;
    expect(b.dmaHandle).toBeGreaterThanOrEqual(NORMAL_START);
    dmaFreeCoherent(d64, PAGE_SIZE, b.cpuAddr, b.dmaHandle);
  });

  it("a device without a coherent mask WARNs once and cannot be served", () => {
    const m = allocMachine({ coherent: true });
    const dev = m.device("nomask", { dmaCoherent: true });
    dev.coherentDmaMask = 0;
    const boot = m.snapshot();
    expect(dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL)).toBeNull();
    expect(dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL)).toBeNull();
    expect(m.log.find({ warn: true, message: "!dev->coherent_dma_mask" })).toHaveLength(1);
    expect(m.snapshot()).toEqual(boot);
  });
});

describe("dma_alloc_attrs: CMA", () => {
  it("uses the device's CMA area for blocking allocations, even one page, and never for GFP_ATOMIC", () => {
    const m = allocMachine({ coherent: true });
    const cam = m.device("cam0", { mask: bitMask(64), dmaCoherent: true }, { cmaArea: m.camCma });
    const base = m.camCma.base;
    expect(base).toBeGreaterThanOrEqual(NORMAL_START);
    const a = dmaAllocCoherent(cam, SZ_64K, GFP_KERNEL) as DmaAlloc;
    expect(inRange(a.dmaHandle, SZ_64K, base, base + m.camCma.size)).toBe(true);
    expect(m.camCma.used).toBe(16);
    // CMA aligns to min(get_order(size), CONFIG_CMA_ALIGNMENT) = order 4.
    expect(a.dmaHandle % SZ_64K).toBe(0);
    const b = dmaAllocCoherent(cam, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    expect(inRange(b.dmaHandle, PAGE_SIZE, base, base + m.camCma.size)).toBe(true);
    const c = dmaAllocCoherent(cam, SZ_64K, GFP_ATOMIC) as DmaAlloc;
    expect(inRange(c.dmaHandle, SZ_64K, base, base + m.camCma.size)).toBe(false);
    expect(m.camCma.used).toBe(17);
    dmaFreeCoherent(cam, SZ_64K, a.cpuAddr, a.dmaHandle);
    dmaFreeCoherent(cam, PAGE_SIZE, b.cpuAddr, b.dmaHandle);
    dmaFreeCoherent(cam, SZ_64K, c.cpuAddr, c.dmaHandle);
    expect(m.camCma.used).toBe(0);
    // The area lies above 4 GiB: a 32-bit device's CMA page fails dma_coherent_ok, is released,
    // and the page allocator serves it below 4 GiB.
    const cam32 = m.device("cam1", { mask: bitMask(32), dmaCoherent: true }, { cmaArea: m.camCma });
    const d = dmaAllocCoherent(cam32, SZ_64K, GFP_KERNEL) as DmaAlloc;
    expect(d.dmaHandle + SZ_64K).toBeLessThanOrEqual(SZ_4G);
    expect(m.camCma.used).toBe(0);
    dmaFreeCoherent(cam32, SZ_64K, d.cpuAddr, d.dmaHandle);
  });

  it("uses the default area only above one page, and only when the memory suits the mask", () => {
    const m = allocMachine({ coherent: true });
    const dev = m.device("gpu0", { dmaCoherent: true });
    const used0 = m.defaultCma.used;
    const small = dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    expect(m.defaultCma.used).toBe(used0);
    const big = dmaAllocCoherent(dev, SZ_1M, GFP_KERNEL) as DmaAlloc;
    expect(m.defaultCma.used).toBe(used0 + SZ_1M / PAGE_SIZE);
    expect(inRange(big.dmaHandle, SZ_1M, m.defaultCma.base, m.defaultCma.base + m.defaultCma.size)).toBe(
      true,
    );
    // The default area lies above 1 GiB: a 30-bit device gets its megabyte from ZONE_DMA instead.
    const d30 = m.device("dev30", { mask: bitMask(30), dmaCoherent: true });
    const low = dmaAllocCoherent(d30, SZ_1M, GFP_KERNEL) as DmaAlloc;
    expect(inRange(low.dmaHandle, SZ_1M, ZONE_DMA_START, ZONE_DMA_END)).toBe(true);
    expect(m.defaultCma.used).toBe(used0 + SZ_1M / PAGE_SIZE);
    dmaFreeCoherent(dev, PAGE_SIZE, small.cpuAddr, small.dmaHandle);
    dmaFreeCoherent(dev, SZ_1M, big.cpuAddr, big.dmaHandle);
    dmaFreeCoherent(d30, SZ_1M, low.cpuAddr, low.dmaHandle);
    expect(m.defaultCma.used).toBe(used0);
  });
});

describe("dma_alloc_attrs: non-coherent devices (remap, atomic pools, cache)", () => {
  it("remaps blocking allocations into the vmalloc area, over the same bytes the device sees", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const size = 3 * PAGE_SIZE;
    const a = dmaAllocCoherent(dev, size, GFP_KERNEL) as DmaAlloc;
    expect(m.vm.isVmallocAddr(a.cpuAddr)).toBe(true);
    expect(a.cpuAddr).toBeGreaterThanOrEqual(VMALLOC_START);
    for (let off = 0; off < size; off += PAGE_SIZE)
      expect(m.vm.translate(a.cpuAddr + off)).toBe(a.dmaHandle + off);
    const data = new Uint8Array(size).map((_, i) => (i * 7 + 1) & 0xff);
    m.cache.deviceWrite(a.dmaHandle, data, { device: "dsp0" });
    const seen = new Uint8Array(size);
    expect(m.vm.cpuReadVirt(a.cpuAddr, seen)).toBe(0);
    expect(seen).toEqual(data);
    dmaFreeCoherent(dev, size, a.cpuAddr, a.dmaHandle);
    expect(m.vm.vmallocUsed).toBe(m.snapshot().vmalloc);
  });

  it("cleans the kernel alias of recycled pages and zeroes them in RAM", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const first = dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    dmaFreeCoherent(dev, PAGE_SIZE, first.cpuAddr, first.dmaHandle);
    // Someone dirties the freed page through its linear map.
    m.cache.cpuFill(first.dmaHandle, PAGE_SIZE, 0xaa);
    const again = dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    expect(again.dmaHandle).toBe(first.dmaHandle);
    const seen = new Uint8Array(PAGE_SIZE);
    const findings = m.cache.findings().length;
    m.cache.deviceRead(again.dmaHandle, seen, { device: "dsp0" });
    expect(m.cache.findings().length).toBe(findings);
    expect(seen.every((b) => b === 0)).toBe(true);
    dmaFreeCoherent(dev, PAGE_SIZE, again.cpuAddr, again.dmaHandle);
  });

  it("serves GFP_ATOMIC from the atomic pool the mask reaches, and gives it back", () => {
    const m = allocMachine();
    const pools = m.system.get(DMA_ATOMIC_POOLS);
    // 1.25 GiB of RAM: atomic_pool_size = 160 KiB, carved as one get_order() block of 256 KiB.
    expect(pools?.atomicPoolSize).toBe(160 * 1024);
    expect(pools?.kernel?.size).toBe(256 * 1024);
    const d30 = m.device("dev30", { mask: bitMask(30) });
    const d64 = m.device("dev64", { mask: bitMask(64) });
    const dmaAvail = pools?.dma?.avail as number;
    const a = dmaAllocCoherent(d30, 2 * PAGE_SIZE, GFP_ATOMIC) as DmaAlloc;
    expect(m.vm.isVmallocAddr(a.cpuAddr)).toBe(true);
    expect(inRange(a.dmaHandle, 2 * PAGE_SIZE, ZONE_DMA_START, ZONE_DMA_END)).toBe(true);
    expect(pools?.dma?.avail).toBe(dmaAvail - 2 * PAGE_SIZE);
    expect(m.vm.translate(a.cpuAddr + PAGE_SIZE)).toBe(a.dmaHandle + PAGE_SIZE);
    const kAvail = pools?.kernel?.avail as number;
    const b = dmaAllocCoherent(d64, PAGE_SIZE, GFP_ATOMIC) as DmaAlloc;
    expect(pools?.kernel?.avail).toBe(kAvail - PAGE_SIZE);
    dmaFreeCoherent(d30, 2 * PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    dmaFreeCoherent(d64, PAGE_SIZE, b.cpuAddr, b.dmaHandle);
    expect(pools?.dma?.avail).toBe(dmaAvail);
    expect(pools?.kernel?.avail).toBe(kAvail);
  });

  it("WARNs 'DMA pool exhausted' (not with __GFP_NOWARN) and 'Failed to get suitable pool' without pools", () => {
    const m = allocMachine();
    const dev = m.device("dsp0", { mask: bitMask(64) });
    const size = (m.system.get(DMA_ATOMIC_POOLS)?.atomicPoolSize as number) * 2;
    expect(dmaAllocCoherent(dev, size, GFP_ATOMIC | __GFP_NOWARN)).toBeNull();
    expect(m.log.find({ warn: true, message: "DMA pool exhausted" })).toHaveLength(0);
    expect(dmaAllocCoherent(dev, size, GFP_ATOMIC)).toBeNull();
    expect(m.log.find({ warn: true, message: "DMA pool exhausted for dsp0" })).toHaveLength(1);
    const bare = allocMachine({ atomicPools: false });
    const d = bare.device("dsp1");
    expect(dmaAllocCoherent(d, PAGE_SIZE, GFP_ATOMIC)).toBeNull();
    expect(bare.log.find({ warn: true, message: "Failed to get suitable pool for dsp1" })).toHaveLength(1);
    // A coherent device needs no pool: GFP_ATOMIC memory comes from the page allocator.
    const c = bare.device("nic0", { dmaCoherent: true });
    const buf = dmaAllocCoherent(c, PAGE_SIZE, GFP_ATOMIC) as DmaAlloc;
    expect(bare.vm.isVmallocAddr(buf.cpuAddr)).toBe(false);
    dmaFreeCoherent(c, PAGE_SIZE, buf.cpuAddr, buf.dmaHandle);
  });

  it("logs the pools made at boot", () => {
    const m = allocMachine();
    const lines = m.log.find({ message: /DMA: preallocated \d+ KiB .* pool for atomic allocations/ });
    expect(lines.map((l) => l.message.match(/KiB (\S+) pool/)?.[1])).toEqual([
      "GFP_KERNEL",
      "GFP_KERNEL|GFP_DMA",
      "GFP_KERNEL|GFP_DMA32",
    ]);
  });
});

describe("coherent buffers need no cache maintenance", () => {
  it("CPU writes through the remap reach the device and device writes reach the CPU, with dma-debug quiet", () => {
    const m = allocMachine();
    const dbg = dmaDebugInit(m.system);
    const dev = m.device("dsp0");
    for (const gfp of [GFP_KERNEL, GFP_ATOMIC]) {
      const a = dmaAllocCoherent(dev, 2 * PAGE_SIZE, gfp) as DmaAlloc;
      const data = new Uint8Array(2 * PAGE_SIZE).map((_, i) => (i * 3 + 1) & 0xff);
      m.vm.cpuWriteVirt(a.cpuAddr, data);
      const seen = new Uint8Array(2 * PAGE_SIZE);
      m.cache.deviceRead(a.dmaHandle, seen, { device: "dsp0" });
      expect(seen).toEqual(data);
      m.cache.deviceWrite(a.dmaHandle + 100, new Uint8Array([42]), { device: "dsp0" });
      const one = new Uint8Array(1);
      m.vm.cpuReadVirt(a.cpuAddr + 100, one);
      expect(one[0]).toBe(42);
      dmaFreeCoherent(dev, 2 * PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    }
    expect(m.cache.findings()).toEqual([]);
    expect(dbg.reports()).toEqual([]);
  });
});

describe("dma_alloc_attrs: contract", () => {
  it("zeroes recycled memory on coherent devices (through the cache)", () => {
    const m = allocMachine({ coherent: true });
    const dev = m.device("nic0", { dmaCoherent: true });
    const a = dmaAllocCoherent(dev, 2 * PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    m.vm.cpuWriteVirt(a.cpuAddr, new Uint8Array(2 * PAGE_SIZE).fill(0x5a));
    dmaFreeCoherent(dev, 2 * PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    const b = dmaAllocAttrs(dev, 2 * PAGE_SIZE, GFP_KERNEL, 0) as DmaAlloc;
    expect(b.dmaHandle).toBe(a.dmaHandle);
    const seen = new Uint8Array(2 * PAGE_SIZE);
    m.vm.cpuReadVirt(b.cpuAddr, seen);
    expect(seen.every((x) => x === 0)).toBe(true);
    m.cache.deviceRead(b.dmaHandle, seen, { device: "nic0" });
    expect(seen.every((x) => x === 0)).toBe(true);
    dmaFreeAttrs(dev, 2 * PAGE_SIZE, b.cpuAddr, b.dmaHandle, 0);
  });

  it("refuses __GFP_COMP with one WARN and no state change; a NULL free is a no-op", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    const boot = m.snapshot();
    expect(dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL | __GFP_COMP)).toBeNull();
    expect(dmaAllocCoherent(dev, SZ_64K, GFP_KERNEL | __GFP_COMP)).toBeNull();
    expect(m.log.find({ warn: true, message: "__GFP_COMP" })).toHaveLength(1);
    dmaFreeCoherent(dev, PAGE_SIZE, null, 0);
    dmaFreeAttrs(dev, PAGE_SIZE, 0, 0x1234, 0);
    expect(m.system.stats.allocations).toBe(0);
    expect(m.system.stats.frees).toBe(0);
    expect(m.snapshot()).toEqual(boot);
  });

  it("DMA_ATTR_NO_KERNEL_MAPPING returns the page as a cookie; dma_alloc_wc works like coherent", () => {
    const m = allocMachine();
    const dev = m.device("gpu0");
    const boot = m.snapshot();
    const a = dmaAllocAttrs(dev, SZ_64K, GFP_KERNEL, DMA_ATTR_NO_KERNEL_MAPPING) as DmaAlloc;
    expect(a.cpuAddr).toBe(a.dmaHandle / PAGE_SIZE);
    expect(m.vm.vmallocUsed).toBe(boot.vmalloc);
    const w = dmaAllocWc(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    expect(m.vm.isVmallocAddr(w.cpuAddr)).toBe(true);
    dmaFreeAttrs(dev, SZ_64K, a.cpuAddr, a.dmaHandle, DMA_ATTR_NO_KERNEL_MAPPING);
    dmaFreeWc(dev, PAGE_SIZE, w.cpuAddr, w.dmaHandle);
    expect(m.snapshot()).toEqual(boot);
  });

  it("counts allocations and frees and calls dma-debug where the kernel does", () => {
    const m = allocMachine();
    const { hooks, calls } = recordingDebug();
    m.system.debug = hooks;
    const dev = m.device("dsp0");
    const a = dmaAllocCoherent(dev, 100, GFP_KERNEL) as DmaAlloc;
    expect(calls).toEqual([`debugDmaAllocCoherent(100,${a.dmaHandle},${a.cpuAddr},0)`]);
    dmaFreeCoherent(dev, 100, a.cpuAddr, a.dmaHandle);
    expect(calls[1]).toBe(`debugDmaFreeCoherent(100,${a.cpuAddr},${a.dmaHandle})`);
    const p = dmaAllocPages(dev, PAGE_SIZE, DMA_TO_DEVICE, GFP_KERNEL);
    expect(p).not.toBeNull();
    if (p === null) return;
    expect(calls[2]).toBe(`debugDmaAllocPages(${p.page},${PAGE_SIZE},${DMA_TO_DEVICE},${p.dmaHandle},0)`);
    dmaFreePages(dev, PAGE_SIZE, p.page, p.dmaHandle, DMA_TO_DEVICE);
    expect(calls[3]).toBe(`debugDmaFreePages(${p.page},${PAGE_SIZE},${DMA_TO_DEVICE},${p.dmaHandle})`);
    expect(m.system.stats.allocations).toBe(2);
    expect(m.system.stats.frees).toBe(2);
  });
});

describe("dma_alloc_pages / dma_alloc_noncoherent on dma-direct", () => {
  it("gives zeroed cacheable pages from the mask's zone, at the linear map", () => {
    const m = allocMachine();
    const d30 = m.device("dev30", { mask: bitMask(30) });
    const boot = m.snapshot();
    const p = dmaAllocPages(d30, 5000, DMA_BIDIRECTIONAL, GFP_KERNEL);
    expect(p).not.toBeNull();
    if (p === null) return;
    expect(inRange(p.dmaHandle, 2 * PAGE_SIZE, ZONE_DMA_START, ZONE_DMA_END)).toBe(true);
    const seen = new Uint8Array(2 * PAGE_SIZE);
    m.vm.cpuReadVirt(m.vm.pageAddress(p.page), seen);
    expect(seen.every((x) => x === 0)).toBe(true);
    dmaFreePages(d30, 5000, p.page, p.dmaHandle, DMA_BIDIRECTIONAL);
    const n = dmaAllocNoncoherent(d30, PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL) as DmaAlloc;
    expect(m.vm.virtToPhys(n.cpuAddr)).toBe(n.dmaHandle);
    dmaFreeNoncoherent(d30, PAGE_SIZE, n.cpuAddr, n.dmaHandle, DMA_BIDIRECTIONAL);
    expect(m.snapshot()).toEqual(boot);
  });

  it("WARNs and refuses zone modifiers, __GFP_COMP and a missing coherent mask", () => {
    const m = allocMachine();
    const dev = m.device("dsp0");
    expect(dmaAllocPages(dev, PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL | __GFP_DMA32)).toBeNull();
    expect(dmaAllocPages(dev, PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL | __GFP_COMP)).toBeNull();
    dev.coherentDmaMask = 0;
    expect(dmaAllocPages(dev, PAGE_SIZE, DMA_BIDIRECTIONAL, GFP_KERNEL)).toBeNull();
    const warns = m.log.find({ warn: true }).map((r) => r.message);
    expect(warns).toEqual([
      "__dma_alloc_pages: WARN_ON_ONCE(gfp & (__GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM))",
      "__dma_alloc_pages: WARN_ON_ONCE(gfp & __GFP_COMP)",
      "__dma_alloc_pages: WARN_ON_ONCE(!dev->coherent_dma_mask)",
    ]);
  });
});

describe("property: random coherent allocations and frees", () => {
  it("never overlap, stay under each mask and return every allocator to its boot state", () => {
    const m = allocMachine();
    const devs: Device[] = [
      m.device("d30", { mask: bitMask(30) }),
      m.device("d32", { mask: bitMask(32) }, { cmaArea: m.camCma }),
      m.device("d64", { mask: bitMask(64) }),
      m.device("c32", { mask: bitMask(32), dmaCoherent: true }),
      m.device("c64", { mask: bitMask(64), dmaCoherent: true }),
    ];
    const boot = m.snapshot();
    const op = fc.record({
      dev: fc.integer({ min: 0, max: devs.length - 1 }),
      pages: fc.integer({ min: 1, max: 40 }),
      extra: fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
      atomic: fc.boolean(),
      zero: fc.boolean(),
      noMap: fc.boolean(),
      freeAt: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const live: { dev: Device; size: number; buf: DmaAlloc; attrs: number }[] = [];
        for (const o of ops) {
          const dev = devs[o.dev] as Device;
          const size = (o.pages - 1) * PAGE_SIZE + o.extra + 1;
          const attrs = o.noMap ? DMA_ATTR_NO_KERNEL_MAPPING : 0;
          const gfp = (o.atomic ? GFP_ATOMIC : GFP_KERNEL) | (o.zero ? __GFP_ZERO : 0) | __GFP_NOWARN;
          const buf = dmaAllocAttrs(dev, size, gfp, attrs);
          if (buf !== null) {
            expect(buf.dmaHandle + size - 1).toBeLessThanOrEqual(dev.coherentDmaMask);
            for (const l of live)
              expect(
                buf.dmaHandle + size <= l.buf.dmaHandle || l.buf.dmaHandle + l.size <= buf.dmaHandle,
              ).toBe(true);
            live.push({ dev, size, buf, attrs });
          }
          if (live.length > 0 && o.freeAt % 3 === 0) {
            const [l] = live.splice(o.freeAt % live.length, 1);
            if (l) dmaFreeAttrs(l.dev, l.size, l.buf.cpuAddr, l.buf.dmaHandle, l.attrs);
          }
        }
        for (const l of live) dmaFreeAttrs(l.dev, l.size, l.buf.cpuAddr, l.buf.dmaHandle, l.attrs);
        expect(m.snapshot()).toEqual(boot);
      }),
      { numRuns: 60, seed: 7 },
    );
    expect(isKernelError(null)).toBe(false);
  });
});

describe("dmam_alloc_coherent (devres-managed)", () => {
  it("frees what the driver left at unbind; dmam_free_coherent frees early and WARNs for strangers", () => {
    const m = allocMachine();
    const dev = m.device("cam0");
    const boot = m.snapshot();
    expect(() => dmamAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL)).toThrow(/no driver bound/);
    dev.bindDriver("camdrv");
    const a = dmamAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    const b = dmamAllocCoherent(dev, SZ_64K, GFP_KERNEL) as DmaAlloc;
    dmamFreeCoherent(dev, PAGE_SIZE, a.cpuAddr, a.dmaHandle);
    expect(m.log.find({ warn: true })).toHaveLength(0);
    const c = dmaAllocCoherent(dev, PAGE_SIZE, GFP_KERNEL) as DmaAlloc;
    dmamFreeCoherent(dev, PAGE_SIZE, c.cpuAddr, c.dmaHandle);
    expect(m.log.find({ warn: true, message: "devres_destroy" })).toHaveLength(1);
    expect(m.system.stats.frees).toBe(2);
    dev.releaseDriver();
    expect(m.system.stats.frees).toBe(3);
    expect(m.snapshot()).toEqual(boot);
    // The release at unbind tore down the 64 KiB buffer's uncached remap too.
    expect(m.vm.vmallocToPage(b.cpuAddr)).toBeNull();
  });
});
