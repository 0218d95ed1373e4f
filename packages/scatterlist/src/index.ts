export { type PageBuffer, pageArrayFootprint, sgTableToPageBuffer } from "./PageBuffer.js";
export {
  dmaRangesToTriples,
  PAGE_DMA_TRIPLE_BYTES,
  PageDmaTripleList,
  sgAllocTableFromTriples,
  sgTableToTriples,
} from "./PageDmaTripleList.js";
export { Sg } from "./Sg.js";
export {
  type PhysAccess,
  type SgKernelVm,
  type SgPageSource,
  SgPool,
  type SgPoolOptions,
  type SgPoolStats,
} from "./SgPool.js";
export { SgSlots } from "./SgSlots.js";
export { SgAppendTable, SgTable } from "./SgTable.js";
export {
  sgAllocAppendTableFromPages,
  sgAllocTableFromPages,
  sgAllocTableFromPagesSegment,
} from "./sgAllocAppendTableFromPages.js";
export { sgAllocTable, sgFreeAppendTable, sgFreeTable } from "./sgAllocTable.js";
export {
  NO_PAGE,
  SCATTERLIST_MAX_SEGMENT,
  SG_APPEND_TABLE_BYTES,
  SG_CHAIN,
  SG_CHUNK_SIZE,
  SG_DMA_BUS_ADDRESS,
  SG_DMA_SWIOTLB,
  SG_END,
  SG_MAX_SEGMENTS,
  SG_MAX_SINGLE_ALLOC,
  SG_MITER_ATOMIC,
  SG_MITER_FROM_SG,
  SG_MITER_LOCAL,
  SG_MITER_TO_SG,
  SG_PAGE_LINK_MASK,
  SG_SLOT_BYTES,
  SG_TABLE_BYTES,
  UINT_MAX,
} from "./sgConstants.js";
export {
  sgCopyBuffer,
  sgCopyFromBuffer,
  sgCopyToBuffer,
  sgPcopyFromBuffer,
  sgPcopyToBuffer,
  sgZeroBuffer,
} from "./sgCopyBuffer.js";
export {
  invalidateSg,
  sgAssignPage,
  sgChain,
  sgChainPtr,
  sgDmaAddress,
  sgDmaFlags,
  sgDmaIsBusAddress,
  sgDmaIsSwiotlb,
  sgDmaLen,
  sgDmaMarkBusAddress,
  sgDmaMarkSwiotlb,
  sgDmaSetAddress,
  sgDmaSetLen,
  sgDmaUnmarkBusAddress,
  sgDmaUnmarkSwiotlb,
  sgFlags,
  sgInitMarker,
  sgInitOne,
  sgInitTable,
  sgIsChain,
  sgIsLast,
  sgLast,
  sgLength,
  sgMarkEnd,
  sgNents,
  sgNentsForLen,
  sgNext,
  sgOffset,
  sgPage,
  sgPhys,
  sgSetBuf,
  sgSetLength,
  sgSetOffset,
  sgSetPage,
  sgUnmarkEnd,
} from "./sgEntry.js";
export {
  forEachSg,
  forEachSgDmaPage,
  forEachSgPage,
  forEachSgtableDmaPage,
  forEachSgtableDmaSg,
  forEachSgtablePage,
  forEachSgtableSg,
  SgPageIter,
  sgPageIterDmaAddress,
  sgPageIterDmaNext,
  sgPageIterNext,
  sgPageIterPage,
  sgPageIterStart,
  sgWalk,
} from "./sgIter.js";
export { sglAlloc, sglAllocOrder, sglFree, sglFreeNOrder, sglFreeOrder } from "./sglAllocOrder.js";
export { SgMappingIter, sgMiterNext, sgMiterSkip, sgMiterStart, sgMiterStop } from "./sgMiter.js";
export { sgSplit } from "./sgSplit.js";
export { type SgTableFootprint, sgTableFootprint } from "./sgTableFootprint.js";
export {
  sgAllocTableFromDmaRanges,
  sgAllocTableFromPhysRanges,
  sgTableToDmaRanges,
  sgTableToPhysRanges,
} from "./sgTableRanges.js";
