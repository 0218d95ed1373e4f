import { defineTracepoint, hex, type Tracepoint } from "@dmakit/core";
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES,
  DMA_ATTR_DEBUGGING_IGNORE_CACHELINES,
  DMA_ATTR_FORCE_CONTIGUOUS,
  DMA_ATTR_MMIO,
  DMA_ATTR_NO_KERNEL_MAPPING,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_PRIVILEGED,
  DMA_ATTR_REQUIRE_COHERENT,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_ATTR_WEAK_ORDERING,
  DMA_ATTR_WRITE_COMBINE,
} from "./dmaAttrs.js";
import { llx } from "./internal/llx.js";

const DIR_SYMBOLS = ["BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE", "NONE"] as const;

/**
 * `decode_dma_data_direction(dir)`: the `__print_symbolic` names of include/trace/events/dma.h
 * (`BIDIRECTIONAL`, `TO_DEVICE`, `FROM_DEVICE`, `NONE`); an unknown value prints as hex.
 * @see include/trace/events/dma.h decode_dma_data_direction
 */
export function decodeDmaDataDirection(dir: number): string {
  return DIR_SYMBOLS[dir] ?? hex(dir);
}

const ATTR_FLAGS: readonly (readonly [number, string])[] = [
  [DMA_ATTR_WEAK_ORDERING, "WEAK_ORDERING"],
  [DMA_ATTR_WRITE_COMBINE, "WRITE_COMBINE"],
  [DMA_ATTR_NO_KERNEL_MAPPING, "NO_KERNEL_MAPPING"],
  [DMA_ATTR_SKIP_CPU_SYNC, "SKIP_CPU_SYNC"],
  [DMA_ATTR_FORCE_CONTIGUOUS, "FORCE_CONTIGUOUS"],
  [DMA_ATTR_ALLOC_SINGLE_PAGES, "ALLOC_SINGLE_PAGES"],
  [DMA_ATTR_NO_WARN, "NO_WARN"],
  [DMA_ATTR_PRIVILEGED, "PRIVILEGED"],
  [DMA_ATTR_MMIO, "MMIO"],
  [DMA_ATTR_DEBUGGING_IGNORE_CACHELINES, "CACHELINES_OVERLAP"],
  [DMA_ATTR_REQUIRE_COHERENT, "REQUIRE_COHERENT"],
];

/**
 * `decode_dma_attrs(attrs)`: `__print_flags(attrs, "|", ...)`: the set attribute names joined by
 * `|` in declaration order, unknown leftover bits as a trailing hex number, "" for none.
 * @see include/trace/events/dma.h decode_dma_attrs, kernel/trace/trace_output.c trace_print_flags_seq
 */
export function decodeDmaAttrs(attrs: number): string {
  const out: string[] = [];
  let rest = attrs;
  for (const [bit, name] of ATTR_FLAGS) {
    if ((rest & bit) === 0) continue;
    out.push(name);
    rest &= ~bit;
  }
  if (rest !== 0) out.push(hex(rest));
  return out.join("|");
}

/**
 * `__print_array(...)`: `{0x1,0x2}` (kernel/trace/trace_output.c trace_print_array_seq).
 * @see kernel/trace/trace_output.c trace_print_array_seq
 */
export function tracePrintArray(values: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < values.length; i++) parts.push(hex(values[i] as number));
  return `{${parts.join(",")}}`;
}

/** Fields of the `dma_map` event class. @see include/trace/events/dma.h */
export type DmaMapFields = {
  readonly device: string;
  readonly physAddr: number;
  readonly dmaAddr: number;
  readonly size: number;
  readonly dir: number;
  readonly attrs: number;
};

/**
 * `dma:dma_map_phys` (6.18; replaced `dma_map_page` and `dma_map_resource`), emitted by every
 * `dma_map_phys` whatever its result (a failed map shows `dma_addr=ffffffffffffffff`).
 * @see include/trace/events/dma.h DECLARE_EVENT_CLASS(dma_map)
 */
export const TRACE_DMA_MAP_PHYS: Tracepoint<DmaMapFields> = defineTracepoint<DmaMapFields>(
  "dma:dma_map_phys",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} size=${f.size} phys_addr=${llx(f.physAddr)} attrs=${decodeDmaAttrs(f.attrs)}`,
);

/** Fields of the `dma_unmap` event class. @see include/trace/events/dma.h */
export type DmaUnmapFields = {
  readonly device: string;
  readonly addr: number;
  readonly size: number;
  readonly dir: number;
  readonly attrs: number;
};

/** `dma:dma_unmap_phys`. @see include/trace/events/dma.h DECLARE_EVENT_CLASS(dma_unmap) */
export const TRACE_DMA_UNMAP_PHYS: Tracepoint<DmaUnmapFields> = defineTracepoint<DmaUnmapFields>(
  "dma:dma_unmap_phys",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.addr)} size=${f.size} attrs=${decodeDmaAttrs(f.attrs)}`,
);

/**
 * Fields of `dma_map_sg`: the kernel's dynamic arrays as `__print_array` strings.
 * @see include/trace/events/dma.h
 */
export type DmaMapSgFields = {
  readonly device: string;
  readonly nents: number;
  readonly ents: number;
  readonly dmaAddrs: string;
  readonly lengths: string;
  readonly physAddrs: string;
  readonly dir: number;
  readonly attrs: number;
};

/** `dma:dma_map_sg` (successful maps). @see include/trace/events/dma.h TRACE_EVENT(dma_map_sg) */
export const TRACE_DMA_MAP_SG: Tracepoint<DmaMapSgFields> = defineTracepoint<DmaMapSgFields>(
  "dma:dma_map_sg",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addrs=${f.dmaAddrs} sizes=${f.lengths} phys_addrs=${f.physAddrs} attrs=${decodeDmaAttrs(f.attrs)}`,
);

/** Fields of `dma_map_sg_err`. @see include/trace/events/dma.h */
export type DmaMapSgErrFields = {
  readonly device: string;
  readonly nents: number;
  readonly err: number;
  readonly physAddrs: string;
  readonly dir: number;
  readonly attrs: number;
};

/** `dma:dma_map_sg_err` (6.12; failed maps, `err` negative). @see include/trace/events/dma.h TRACE_EVENT(dma_map_sg_err) */
export const TRACE_DMA_MAP_SG_ERR: Tracepoint<DmaMapSgErrFields> = defineTracepoint<DmaMapSgErrFields>(
  "dma:dma_map_sg_err",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addrs=${f.physAddrs} err=${f.err} attrs=${decodeDmaAttrs(f.attrs)}`,
);

/** Fields of `dma_unmap_sg`. @see include/trace/events/dma.h */
export type DmaUnmapSgFields = {
  readonly device: string;
  readonly nents: number;
  readonly addrs: string;
  readonly dir: number;
  readonly attrs: number;
};

/** `dma:dma_unmap_sg` (the CPU physical addresses of the original entries). @see include/trace/events/dma.h */
export const TRACE_DMA_UNMAP_SG: Tracepoint<DmaUnmapSgFields> = defineTracepoint<DmaUnmapSgFields>(
  "dma:dma_unmap_sg",
  (f) =>
    `${f.device} dir=${decodeDmaDataDirection(f.dir)} phys_addrs=${f.addrs} attrs=${decodeDmaAttrs(f.attrs)}`,
);

/** Fields of the `dma_sync_single` event class. @see include/trace/events/dma.h */
export type DmaSyncSingleFields = {
  readonly device: string;
  readonly dmaAddr: number;
  readonly size: number;
  readonly dir: number;
};

const syncSingle = (f: DmaSyncSingleFields) =>
  `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addr=${llx(f.dmaAddr)} size=${f.size}`;

/** `dma:dma_sync_single_for_cpu`. @see include/trace/events/dma.h DECLARE_EVENT_CLASS(dma_sync_single) */
export const TRACE_DMA_SYNC_SINGLE_FOR_CPU: Tracepoint<DmaSyncSingleFields> =
  defineTracepoint<DmaSyncSingleFields>("dma:dma_sync_single_for_cpu", syncSingle);

/** `dma:dma_sync_single_for_device`. @see include/trace/events/dma.h */
export const TRACE_DMA_SYNC_SINGLE_FOR_DEVICE: Tracepoint<DmaSyncSingleFields> =
  defineTracepoint<DmaSyncSingleFields>("dma:dma_sync_single_for_device", syncSingle);

/** Fields of the `dma_sync_sg` event class. @see include/trace/events/dma.h */
export type DmaSyncSgFields = {
  readonly device: string;
  readonly nents: number;
  readonly dmaAddrs: string;
  readonly lengths: string;
  readonly dir: number;
};

const syncSg = (f: DmaSyncSgFields) =>
  `${f.device} dir=${decodeDmaDataDirection(f.dir)} dma_addrs=${f.dmaAddrs} sizes=${f.lengths}`;

/** `dma:dma_sync_sg_for_cpu`. @see include/trace/events/dma.h DECLARE_EVENT_CLASS(dma_sync_sg) */
export const TRACE_DMA_SYNC_SG_FOR_CPU: Tracepoint<DmaSyncSgFields> = defineTracepoint<DmaSyncSgFields>(
  "dma:dma_sync_sg_for_cpu",
  syncSg,
);

/** `dma:dma_sync_sg_for_device`. @see include/trace/events/dma.h */
export const TRACE_DMA_SYNC_SG_FOR_DEVICE: Tracepoint<DmaSyncSgFields> = defineTracepoint<DmaSyncSgFields>(
  "dma:dma_sync_sg_for_device",
  syncSg,
);
