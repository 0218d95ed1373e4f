// The quick example of README.md, verbatim, with assertions on the values its comments show.

import { NSEC_PER_MSEC, SimClock, SZ_2M, SZ_4K } from "@dmakit/core";
import { FlushQueue, IOMMU_READ, IOMMU_WRITE, Iotlb, initIovaDomain, iommuPgsize } from "@dmakit/iommu";
import { describe, expect, it } from "vitest";

describe("README quick example", () => {
  it("runs as written in README.md", () => {
    // Page sizes iommu_map picks on a 4K+2M IOMMU: a 4 KiB head up to the 2 MiB boundary, then a block.
    const sizes = SZ_4K | SZ_2M;
    const head = iommuPgsize(sizes, 0x1f_f000, 0x801f_f000, SZ_2M + SZ_4K); // { pgsize: 4096, count: 1 }
    const body = iommuPgsize(sizes, 0x20_0000, 0x8020_0000, SZ_2M); // { pgsize: 0x200000, count: 1 }

    // dma-iommu's IOVA space: top-down below the limit, sizes rounded up to a power of two.
    const clock = new SimClock();
    const iovad = initIovaDomain(SZ_4K, 1, { clock });
    const pfn = iovad.allocIovaFast(3, 0xf_ffff, true); // 0xffffc: 4 pages just below 4 GiB

    // A device's DMA cached the translation; a lazy (DMA_FQ) unmap queues the IOVA instead of flushing.
    const iotlb = new Iotlb({ capacity: 64 });
    iotlb.insert(1, pfn * SZ_4K, 0x8000_0000, SZ_4K, IOMMU_READ | IOMMU_WRITE);
    const fq = new FlushQueue({
      clock,
      flushIotlbAll: () => iotlb.invalidateTag(1),
      freeIova: (p, n) => iovad.freeIovaFast(p, n),
      freePgtablePages: () => {},
    });
    fq.queueIova(pfn, 4);
    const stale = iotlb.lookup(1, pfn * SZ_4K) >= 0; // true: the device can still reach the page
    clock.advance(10 * NSEC_PER_MSEC); // IOVA_DEFAULT_FQ_TIMEOUT: the timer flushes and frees
    const gone = iotlb.lookup(1, pfn * SZ_4K); // -1
    const window = fq.stats().maxStaleNs; // 10_000_000
    const reused = iovad.allocIovaFast(4, 0xf_ffff, true) === pfn; // true: from this CPU's magazine

    // The values the README's comments show.
    expect(head).toEqual({ pgsize: 4096, count: 1 });
    expect(body).toEqual({ pgsize: 0x200000, count: 1 });
    expect(pfn).toBe(0xffffc);
    expect(stale).toBe(true);
    expect(gone).toBe(-1);
    expect(window).toBe(10_000_000);
    expect(reused).toBe(true);
  });
});
