import { defineTracepoint, hex, type Tracepoint } from "@dmakit/core";
import { gfpNames } from "./dmaPool.js";
import { decodeDmaAttrs, decodeDmaDataDirection } from "./dmaTrace.js";
import { llx } from "./internal/llx.js";

/**
 * Fields of the `_dma_alloc` event class (`dma_alloc`, `dma_alloc_pages`, `dma_alloc_sgt_err`).
 * @see include/trace/events/dma.h
 */
export type DmaAllocFields = {
  readonly device: string;
  /** The CPU address, 0 for a failed allocation. */
  readonly virtAddr: number;
  readonly dmaAddr: number;
  readonly size: number;
  readonly dir: number;
  readonly flags: number;
  readonly attrs: number;
};

const allocText = (f: DmaAllocFields) =>
  `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} size=${f.size} virt_addr=${hex(f.virtAddr)} flags=${gfpNames(f.flags)} attrs=${decodeDmaAttrs(f.attrs)}`;

/** `dma:dma_alloc`, emitted by every `dma_alloc_attrs` (virt_addr 0 on failure). @see include/trace/events/dma.h */
export const TRACE_DMA_ALLOC: Tracepoint<DmaAllocFields> = defineTracepoint<DmaAllocFields>(
  "dma:dma_alloc",
  allocText,
);
/** `dma:dma_alloc_pages`. @see include/trace/events/dma.h */
export const TRACE_DMA_ALLOC_PAGES: Tracepoint<DmaAllocFields> = defineTracepoint<DmaAllocFields>(
  "dma:dma_alloc_pages",
  allocText,
);
/** `dma:dma_alloc_sgt_err`: a failed `dma_alloc_noncontiguous`. @see include/trace/events/dma.h */
export const TRACE_DMA_ALLOC_SGT_ERR: Tracepoint<DmaAllocFields> = defineTracepoint<DmaAllocFields>(
  "dma:dma_alloc_sgt_err",
  allocText,
);

/** Fields of the `_dma_free` event class (`dma_free`, `dma_free_pages`). @see include/trace/events/dma.h */
export type DmaFreeFields = {
  readonly device: string;
  readonly virtAddr: number;
  readonly dmaAddr: number;
  readonly size: number;
  readonly dir: number;
  readonly attrs: number;
};

const freeText = (f: DmaFreeFields) =>
  `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} size=${f.size} virt_addr=${hex(f.virtAddr)} attrs=${decodeDmaAttrs(f.attrs)}`;

/** `dma:dma_free`. @see include/trace/events/dma.h */
export const TRACE_DMA_FREE: Tracepoint<DmaFreeFields> = defineTracepoint<DmaFreeFields>(
  "dma:dma_free",
  freeText,
);
/** `dma:dma_free_pages`. @see include/trace/events/dma.h */
export const TRACE_DMA_FREE_PAGES: Tracepoint<DmaFreeFields> = defineTracepoint<DmaFreeFields>(
  "dma:dma_free_pages",
  freeText,
);

/**
 * Fields of `dma_alloc_sgt` / `dma_free_sgt`: the DMA address and page list as `__print_array` text.
 * @see include/trace/events/dma.h
 */
export type DmaSgtFields = {
  readonly device: string;
  readonly dmaAddr: number;
  readonly pages: string;
  readonly size: number;
  readonly dir: number;
  readonly flags: number;
  readonly attrs: number;
};

/** `dma:dma_alloc_sgt`: a successful `dma_alloc_noncontiguous`. @see include/trace/events/dma.h */
export const TRACE_DMA_ALLOC_SGT: Tracepoint<DmaSgtFields> = defineTracepoint<DmaSgtFields>(
  "dma:dma_alloc_sgt",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} pages=${f.pages} size=${f.size} flags=${gfpNames(f.flags)} attrs=${decodeDmaAttrs(f.attrs)}`,
);
/** `dma:dma_free_sgt`. @see include/trace/events/dma.h */
export const TRACE_DMA_FREE_SGT: Tracepoint<DmaSgtFields> = defineTracepoint<DmaSgtFields>(
  "dma:dma_free_sgt",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} pages=${f.pages} size=${f.size}`,
);
