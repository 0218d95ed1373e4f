import { hex } from "@dmakit/core";

/** `%llx`: hex digits without the 0x prefix (DMA_MAPPING_ERROR and 64-bit masks as 16 f's). */
export function llx(x: number): string {
  return hex(x).slice(2);
}
