import { formatBytes } from "@dmakit/core";
import { formatColumns } from "./formatColumns.js";
import { formatSection } from "./formatSection.js";
import type { MachineReport } from "./report.js";

const addr = (n: number): string => `0x${n.toString(16).padStart(12, "0")}`;

function table(rows: string[][]): string[] {
  return formatColumns(rows, "  ");
}

/** Renders a {@link MachineReport} as the text `dmakit run boot` prints. */
export function formatReportText(r: MachineReport): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(`machine ${m.name}: ${m.description}`);
  out.push(
    `  ${m.arch}, ${m.cpus} CPUs, DMA ${m.coherent ? "coherent (devices snoop caches)" : "non-coherent"}, seed ${m.seed}`,
  );

  out.push("", "Physical memory map");
  out.push(
    ...table(
      r.memory.map.map((e) => [`[${addr(e.start)}-${addr(e.end - 1)}]`, formatBytes(e.size), e.kind, e.name]),
    ),
  );
  out.push(`  RAM ${formatBytes(r.memory.totalRam)}, reserved ${formatBytes(r.memory.reserved)}`);

  out.push("", "Zones");
  out.push(
    ...table(
      r.zones.map((z) => [
        z.name,
        `[${addr(z.start)}-${addr(z.end - 1)}]`,
        `present ${z.presentPages} pages (${formatBytes(z.presentPages * 4096)})`,
        `reserved ${z.reservedPages}`,
        `managed ${z.managedPages}`,
        `free ${z.freePages}`,
      ]),
    ),
  );

  out.push(
    ...formatSection(
      "CMA areas",
      r.cma.map((c) => [
        c.name,
        formatBytes(c.size),
        `[${addr(c.base)}-${addr(c.base + c.size - 1)}]`,
        c.zone,
        `used ${c.usedPages} pages`,
        `free ${c.freePages}`,
      ]),
    ),
  );

  out.push(
    ...formatSection(
      "IOMMUs",
      r.iommus.map((x) => [
        x.name,
        x.type,
        x.base !== null ? `regs ${addr(x.base)}` : "",
        x.devices.length > 0 ? `devices: ${x.devices.join(", ")}` : "no devices",
      ]),
    ),
  );

  out.push("", "Buses");
  out.push(`  platform: ${r.buses.platform.join(", ") || "(none)"}`);
  if (r.buses.pci.length === 0) out.push("  pci: (none)");
  for (const hb of r.buses.pci) {
    const notes = [
      `domain ${hb.domain}`,
      hb.p2pdmaAllowlisted ? "P2PDMA allowlisted" : "not P2PDMA allowlisted",
    ];
    if (hb.iommu !== null) notes.push(`behind ${hb.iommu}`);
    out.push(`  pci: ${hb.name} (${notes.join(", ")})`);
    out.push(
      ...table(
        hb.functions.map((f) => [
          `${"  ".repeat(f.depth + 1)}${f.pciName}`,
          f.name,
          f.type,
          f.acsRedirect === null ? "" : f.acsRedirect ? "ACS redirect" : "no ACS redirect",
        ]),
      ),
    );
  }

  out.push(
    ...formatSection(
      "Devices",
      r.devices.map((d) => [
        d.name,
        d.bus ?? "-",
        d.kind ?? "",
        `mask ${d.dmaMaskBits} bits`,
        d.coherent ? "coherent" : "non-coherent",
        `max seg ${formatBytes(d.maxSegmentSize)}`,
        d.iommu !== null
          ? `via ${d.iommu}${d.streamIds.length > 0 ? ` sid ${d.streamIds.map((s) => `0x${s.toString(16)}`).join(",")}` : ""}${d.domain !== null ? ` (${d.domain})` : ""}`
          : "direct",
      ]),
    ),
  );
  const pciDevs = r.devices.filter((d) => d.pci !== undefined);
  if (pciDevs.length > 0) {
    out.push("", "PCI BARs and IOMMU groups");
    out.push(
      ...table(
        pciDevs.flatMap((d) => {
          const p = d.pci as NonNullable<typeof d.pci>;
          const head = [d.name, p.pciName, `group ${p.iommuGroup}`, p.untrusted ? "untrusted" : ""];
          return [
            head,
            ...p.bars.map((b) => [
              "",
              `BAR${b.bar}`,
              `[${addr(b.cpuAddr)}-${addr(b.cpuAddr + b.size - 1)}]`,
              `${formatBytes(b.size)}${b.prefetchable ? " prefetchable" : ""}${b.busAddr !== b.cpuAddr ? ` bus ${addr(b.busAddr)}` : ""}`,
            ]),
          ];
        }),
      ),
    );
  }
  return `${out.join("\n")}\n`;
}
