import { type Device, DeviceKey, hex, KernelError } from "@dmakit/core";
import { __GFP_NOWARN } from "@dmakit/mm-pages";
import { type DmaAlloc, dmaAllocAttrs, dmaFreeAttrs } from "./dmaAlloc.js";
import { DMA_ATTR_NO_WARN } from "./dmaAttrs.js";

/** `struct dma_devres`: one managed coherent buffer; `live` false once freed either way. */
interface DmaDevres {
  readonly size: number;
  readonly cpuAddr: number;
  readonly dmaHandle: number;
  readonly attrs: number;
  live: boolean;
}

/** The device's live managed buffers (the `dmam_release` entries of its devres list). */
const DMA_DEVRES = new DeviceKey<DmaDevres[]>("dma-devres");

/**
 * `dmam_alloc_attrs(dev, size, &dma_handle, gfp, attrs)`: {@link dmaAllocAttrs} whose buffer is
 * freed with the same size and attrs when the driver unbinds. Null when the allocation fails.
 * The model keeps devres on bound drivers only: EINVAL (nothing allocated) when no driver is
 * bound. @see kernel/dma/mapping.c dmam_alloc_attrs
 */
export function dmamAllocAttrs(dev: Device, size: number, gfp: number, attrs = 0): DmaAlloc | null {
  if (dev.driver === null)
    throw new KernelError("EINVAL", `dmam_alloc_attrs: device ${dev.name} has no driver bound`);
  const r = dmaAllocAttrs(dev, size, gfp, attrs);
  if (r === null) return null;
  const dr: DmaDevres = { size, cpuAddr: r.cpuAddr, dmaHandle: r.dmaHandle, attrs, live: true };
  let list = dev.get(DMA_DEVRES);
  if (list === undefined) {
    list = [];
    dev.set(DMA_DEVRES, list);
  }
  list.push(dr);
  const all = list;
  dev.addDevres(() => {
    if (!dr.live) return;
    dr.live = false;
    all.splice(all.indexOf(dr), 1);
    dmaFreeAttrs(dev, dr.size, dr.cpuAddr, dr.dmaHandle, dr.attrs);
  });
  return r;
}

/**
 * `dmam_alloc_coherent(dev, size, &dma_handle, gfp)` = {@link dmamAllocAttrs} with
 * `DMA_ATTR_NO_WARN` for `__GFP_NOWARN`. @see include/linux/dma-mapping.h
 */
export function dmamAllocCoherent(dev: Device, size: number, gfp: number): DmaAlloc | null {
  return dmamAllocAttrs(dev, size, gfp, (gfp & __GFP_NOWARN) !== 0 ? DMA_ATTR_NO_WARN : 0);
}

/**
 * `dmam_free_coherent(dev, size, vaddr, dma_handle)`: frees a managed buffer early. WARNs when no
 * managed buffer has that CPU address (`devres_destroy` failed) and when its size or handle
 * differ (`dmam_match`), and frees with `dma_free_coherent` in any case, as the kernel does.
 * @see kernel/dma/mapping.c dmam_free_coherent, dmam_match
 */
export function dmamFreeCoherent(dev: Device, size: number, cpuAddr: number, dmaHandle: number): void {
  const list = dev.get(DMA_DEVRES) ?? [];
  const i = list.findIndex((d) => d.cpuAddr === cpuAddr);
  const dr = list[i];
  if (dr !== undefined) {
    dev.log.warn(
      dr.size !== size || dr.dmaHandle !== dmaHandle,
      dev.name,
      `dmam_match: WARN_ON(size ${size} != ${dr.size} || dma_handle ${hex(dmaHandle)} != ${hex(dr.dmaHandle)})`,
    );
    dr.live = false;
    list.splice(i, 1);
  }
  dev.log.warn(
    dr === undefined,
    dev.name,
    `dmam_free_coherent: WARN_ON(devres_destroy): no managed buffer at ${hex(cpuAddr)}`,
  );
  dmaFreeAttrs(dev, size, cpuAddr, dmaHandle, 0);
}
