/** printk log levels. @see include/linux/kern_levels.h */
export type LogLevel = "emerg" | "alert" | "crit" | "err" | "warning" | "notice" | "info" | "debug";

/**
 * One line of the kernel log (dmesg).
 * @see kernel/printk/printk_ringbuffer.h struct printk_info (the model keeps the text split in prefix and message)
 */
export interface LogRecord {
  /** Simulated time in nanoseconds when it was logged. */
  readonly timeNs: number;
  readonly level: LogLevel;
  /** The subsystem or device prefix, e.g. `"DMA-API"`, `"iommu"`, `"cam0"`. */
  readonly prefix: string;
  readonly message: string;
  /** True for records made by {@link KernelLog.warn} / `WARN()`. */
  readonly warn: boolean;
}

/**
 * The machine's kernel log: what `printk`, `dev_warn`, `WARN()` and `WARN_ONCE()` write.
 * A WARN records and carries on, exactly as the kernel does; tests assert on the records.
 * Owned by one machine; two machines never share a log.
 *
 * @see kernel/printk/printk.c, include/asm-generic/bug.h (WARN, WARN_ONCE)
 */
export class KernelLog {
  private readonly lines: LogRecord[] = [];
  private readonly onceKeys = new Set<string>();
  private readonly now: () => number;
  /** Records beyond this many are dropped oldest-first, like the printk ring buffer. */
  readonly capacity: number;
  private dropped = 0;

  constructor(options: { now?: () => number; capacity?: number } = {}) {
    this.now = options.now ?? (() => 0);
    this.capacity = options.capacity ?? 100_000;
  }

  /** `printk(KERN_<level> prefix ": " message)`. */
  log(level: LogLevel, prefix: string, message: string): LogRecord {
    return this.push({ timeNs: this.now(), level, prefix, message, warn: false });
  }

  err(prefix: string, message: string): LogRecord {
    return this.log("err", prefix, message);
  }

  warning(prefix: string, message: string): LogRecord {
    return this.log("warning", prefix, message);
  }

  notice(prefix: string, message: string): LogRecord {
    return this.log("notice", prefix, message);
  }

  info(prefix: string, message: string): LogRecord {
    return this.log("info", prefix, message);
  }

  debug(prefix: string, message: string): LogRecord {
    return this.log("debug", prefix, message);
  }

  /**
   * `WARN(cond, ...)`: when `cond` holds, records a warning and returns true; execution continues.
   * @see include/asm-generic/bug.h WARN
   */
  warn(cond: boolean, prefix: string, message: string): boolean {
    if (cond) this.push({ timeNs: this.now(), level: "warning", prefix, message, warn: true });
    return cond;
  }

  /**
   * `WARN_ONCE(cond, ...)`: like {@link warn} but records only the first time for `key`
   * (the kernel keys on the call site; the model keys on a string the caller chooses).
   * Returns `cond` every time, as the kernel macro does.
   */
  warnOnce(cond: boolean, key: string, prefix: string, message: string): boolean {
    if (cond && !this.onceKeys.has(key)) {
      this.onceKeys.add(key);
      this.push({ timeNs: this.now(), level: "warning", prefix, message, warn: true });
    }
    return cond;
  }

  /** All records, oldest first. */
  records(): readonly LogRecord[] {
    return this.lines;
  }

  /** Records matching a filter: a level, a prefix, a substring or regular expression of the message. */
  find(
    filter: { level?: LogLevel; prefix?: string; message?: string | RegExp; warn?: boolean } = {},
  ): LogRecord[] {
    return this.lines.filter(
      (r) =>
        (filter.level === undefined || r.level === filter.level) &&
        (filter.prefix === undefined || r.prefix === filter.prefix) &&
        (filter.warn === undefined || r.warn === filter.warn) &&
        (filter.message === undefined ||
          (typeof filter.message === "string"
            ? r.message.includes(filter.message)
            : filter.message.test(r.message))),
    );
  }

  /** Number of WARN()s recorded. */
  get warnCount(): number {
    let n = 0;
    for (const r of this.lines) if (r.warn) n++;
    return n;
  }

  /** How many records the ring dropped. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** The log as `dmesg` prints it: `[    0.000123] prefix: message`. */
  dmesg(): string {
    return this.lines.map(formatRecord).join("\n");
  }

  /** Forgets every record (not the WARN_ONCE state, as clearing dmesg does not re-arm WARN_ONCE). */
  clear(): void {
    this.lines.length = 0;
  }

  private push(r: LogRecord): LogRecord {
    if (this.capacity <= 0) {
      this.dropped++;
      return r;
    }
    if (this.lines.length >= this.capacity) {
      this.lines.shift();
      this.dropped++;
    }
    this.lines.push(r);
    return r;
  }
}

/**
 * Formats one record the way dmesg does, with seconds since boot: `[%5lu.%06lu]`, microseconds
 * truncated (not rounded) as `print_time` does. @see kernel/printk/printk.c print_time
 */
export function formatRecord(r: LogRecord): string {
  const ns = Math.max(0, Math.floor(r.timeNs));
  const secs = `${String(Math.floor(ns / 1e9)).padStart(5, " ")}.${String(Math.floor((ns % 1e9) / 1e3)).padStart(6, "0")}`;
  const tag = r.warn ? "WARNING: " : "";
  return `[${secs}] ${tag}${r.prefix ? `${r.prefix}: ` : ""}${r.message}`;
}
