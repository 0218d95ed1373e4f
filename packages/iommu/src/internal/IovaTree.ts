/**
 * The IOVA domain's red-black tree (`struct rb_root rbroot` of `struct iova` nodes), kept in a
 * typed-array node pool so that 100k live IOVAs cost no JS objects: node `n` is the row `n` of
 * `lo`/`hi`/`left`/`right`/`parent`/`color`. Row 0 is the black NIL sentinel (CLRS style), so
 * "no node" is 0, the same way the kernel uses NULL.
 *
 * Keys are `pfn_lo`; intervals never overlap, so ordering by `pfn_lo` orders them completely.
 *
 * @see lib/rbtree.c (rb_insert_color, rb_erase, rb_next, rb_prev, rb_first, rb_last)
 */
export const NIL = 0;
const RED = 0;
const BLACK = 1;

export class IovaTree {
  lo: Float64Array;
  hi: Float64Array;
  left: Int32Array;
  right: Int32Array;
  parent: Int32Array;
  color: Uint8Array;
  root = NIL;
  /** Nodes currently linked into the tree. */
  count = 0;
  /** Rows handed out and not yet returned to the pool (tree nodes plus detached ones). */
  inUse = 0;
  private freeHead = NIL;
  private nextUnused = 1;

  constructor(capacity = 1024) {
    const cap = Math.max(16, capacity + 1);
    this.lo = new Float64Array(cap);
    this.hi = new Float64Array(cap);
    this.left = new Int32Array(cap);
    this.right = new Int32Array(cap);
    this.parent = new Int32Array(cap);
    this.color = new Uint8Array(cap);
    this.color[NIL] = BLACK;
  }

  /** Rows the pool can hold before it grows. */
  get capacity(): number {
    return this.lo.length - 1;
  }

  /** `kmem_cache_zalloc(iova_cache)`: a detached row holding [lo, hi]. */
  allocNode(lo: number, hi: number): number {
    let n = this.freeHead;
    if (n !== NIL) {
      this.freeHead = this.right[n]!;
    } else {
      if (this.nextUnused === this.lo.length) this.grow();
      n = this.nextUnused++;
    }
    this.lo[n] = lo;
    this.hi[n] = hi;
    this.left[n] = NIL;
    this.right[n] = NIL;
    this.parent[n] = NIL;
    this.inUse++;
    return n;
  }

  /** `kmem_cache_free(iova_cache)`: returns a detached row to the pool. */
  freeNode(n: number): void {
    this.right[n] = this.freeHead;
    this.freeHead = n;
    this.inUse--;
  }

  /** Drops every node (the pool keeps its capacity). */
  clear(): void {
    this.root = NIL;
    this.count = 0;
    this.inUse = 0;
    this.freeHead = NIL;
    this.nextUnused = 1;
  }

  private grow(): void {
    const cap = this.lo.length * 2;
    const lo = new Float64Array(cap);
    lo.set(this.lo);
    this.lo = lo;
    const hi = new Float64Array(cap);
    hi.set(this.hi);
    this.hi = hi;
    const left = new Int32Array(cap);
    left.set(this.left);
    this.left = left;
    const right = new Int32Array(cap);
    right.set(this.right);
    this.right = right;
    const parent = new Int32Array(cap);
    parent.set(this.parent);
    this.parent = parent;
    const color = new Uint8Array(cap);
    color.set(this.color);
    this.color = color;
  }

  /** `rb_first`. */
  first(): number {
    let n = this.root;
    if (n === NIL) return NIL;
    const left = this.left;
    while (left[n]! !== NIL) n = left[n]!;
    return n;
  }

  /** `rb_last`. */
  last(): number {
    let n = this.root;
    if (n === NIL) return NIL;
    const right = this.right;
    while (right[n]! !== NIL) n = right[n]!;
    return n;
  }

  /** `rb_next`. */
  next(n: number): number {
    const right = this.right;
    let r = right[n]!;
    if (r !== NIL) {
      const left = this.left;
      while (left[r]! !== NIL) r = left[r]!;
      return r;
    }
    const parent = this.parent;
    let p = parent[n]!;
    while (p !== NIL && n === right[p]!) {
      n = p;
      p = parent[p]!;
    }
    return p;
  }

  /** `rb_prev`. */
  prev(n: number): number {
    const left = this.left;
    let l = left[n]!;
    if (l !== NIL) {
      const right = this.right;
      while (right[l]! !== NIL) l = right[l]!;
      return l;
    }
    const parent = this.parent;
    let p = parent[n]!;
    while (p !== NIL && n === left[p]!) {
      n = p;
      p = parent[p]!;
    }
    return p;
  }

  /**
   * `iova_insert_rbtree(root, iova, start)`: links detached node `z` below `start` (or the root
   * when `start` is NIL) by its `lo`, then rebalances. Returns false, leaving `z` detached, when
   * a node with the same `lo` exists (the kernel WARNs; the caller does).
   */
  insert(z: number, start: number): boolean {
    const lo = this.lo;
    const left = this.left;
    const right = this.right;
    const key = lo[z]!;
    let y = NIL;
    let x = start !== NIL ? start : this.root;
    let goLeft = false;
    while (x !== NIL) {
      y = x;
      const k = lo[x]!;
      if (key < k) {
        x = left[x]!;
        goLeft = true;
      } else if (key > k) {
        x = right[x]!;
        goLeft = false;
      } else {
        return false;
      }
    }
    this.parent[z] = y;
    left[z] = NIL;
    right[z] = NIL;
    this.color[z] = RED;
    if (y === NIL) this.root = z;
    else if (goLeft) left[y] = z;
    else right[y] = z;
    this.count++;
    this.insertFixup(z);
    return true;
  }

  private insertFixup(z: number): void {
    const parent = this.parent;
    const color = this.color;
    const left = this.left;
    const right = this.right;
    for (;;) {
      let p = parent[z]!;
      if (color[p]! !== RED) break;
      let g = parent[p]!;
      if (p === left[g]!) {
        const u = right[g]!;
        if (color[u]! === RED) {
          color[p] = BLACK;
          color[u] = BLACK;
          color[g] = RED;
          z = g;
        } else {
          if (z === right[p]!) {
            z = p;
            this.rotateLeft(z);
            p = parent[z]!;
            g = parent[p]!;
          }
          color[p] = BLACK;
          color[g] = RED;
          this.rotateRight(g);
        }
      } else {
        const u = left[g]!;
        if (color[u]! === RED) {
          color[p] = BLACK;
          color[u] = BLACK;
          color[g] = RED;
          z = g;
        } else {
          if (z === left[p]!) {
            z = p;
            this.rotateRight(z);
            p = parent[z]!;
            g = parent[p]!;
          }
          color[p] = BLACK;
          color[g] = RED;
          this.rotateLeft(g);
        }
      }
    }
    color[this.root] = BLACK;
  }

  private rotateLeft(x: number): void {
    const left = this.left;
    const right = this.right;
    const parent = this.parent;
    const y = right[x]!;
    const b = left[y]!;
    right[x] = b;
    if (b !== NIL) parent[b] = x;
    const p = parent[x]!;
    parent[y] = p;
    if (p === NIL) this.root = y;
    else if (x === left[p]!) left[p] = y;
    else right[p] = y;
    left[y] = x;
    parent[x] = y;
  }

  private rotateRight(x: number): void {
    const left = this.left;
    const right = this.right;
    const parent = this.parent;
    const y = left[x]!;
    const b = right[y]!;
    left[x] = b;
    if (b !== NIL) parent[b] = x;
    const p = parent[x]!;
    parent[y] = p;
    if (p === NIL) this.root = y;
    else if (x === right[p]!) right[p] = y;
    else left[p] = y;
    right[y] = x;
    parent[x] = y;
  }

  private transplant(u: number, v: number): void {
    const p = this.parent[u]!;
    if (p === NIL) this.root = v;
    else if (u === this.left[p]!) this.left[p] = v;
    else this.right[p] = v;
    // Writing NIL's parent is deliberate (CLRS): eraseFixup climbs from x even when x is NIL.
    this.parent[v] = p;
  }

  /** `rb_erase`: unlinks `z` (it stays allocated; the caller frees it). Node ids never move. */
  erase(z: number): void {
    const left = this.left;
    const right = this.right;
    const parent = this.parent;
    const color = this.color;
    let yColor = color[z]!;
    let x: number;
    if (left[z]! === NIL) {
      x = right[z]!;
      this.transplant(z, x);
    } else if (right[z]! === NIL) {
      x = left[z]!;
      this.transplant(z, x);
    } else {
      let y = right[z]!;
      while (left[y]! !== NIL) y = left[y]!;
      yColor = color[y]!;
      x = right[y]!;
      if (parent[y]! === z) {
        parent[x] = y;
      } else {
        this.transplant(y, x);
        right[y] = right[z]!;
        parent[right[y]!] = y;
      }
      this.transplant(z, y);
      left[y] = left[z]!;
      parent[left[y]!] = y;
      color[y] = color[z]!;
    }
    if (yColor === BLACK) this.eraseFixup(x);
    left[z] = NIL;
    right[z] = NIL;
    parent[z] = NIL;
    parent[NIL] = NIL;
    this.count--;
  }

  private eraseFixup(x: number): void {
    const left = this.left;
    const right = this.right;
    const parent = this.parent;
    const color = this.color;
    while (x !== this.root && color[x]! === BLACK) {
      const p = parent[x]!;
      if (x === left[p]!) {
        let w = right[p]!;
        if (color[w]! === RED) {
          color[w] = BLACK;
          color[p] = RED;
          this.rotateLeft(p);
          w = right[parent[x]!]!;
        }
        if (color[left[w]!]! === BLACK && color[right[w]!]! === BLACK) {
          color[w] = RED;
          x = parent[x]!;
        } else {
          if (color[right[w]!]! === BLACK) {
            color[left[w]!] = BLACK;
            color[w] = RED;
            this.rotateRight(w);
            w = right[parent[x]!]!;
          }
          const px = parent[x]!;
          color[w] = color[px]!;
          color[px] = BLACK;
          color[right[w]!] = BLACK;
          this.rotateLeft(px);
          x = this.root;
        }
      } else {
        let w = left[p]!;
        if (color[w]! === RED) {
          color[w] = BLACK;
          color[p] = RED;
          this.rotateRight(p);
          w = left[parent[x]!]!;
        }
        if (color[right[w]!]! === BLACK && color[left[w]!]! === BLACK) {
          color[w] = RED;
          x = parent[x]!;
        } else {
          if (color[left[w]!]! === BLACK) {
            color[right[w]!] = BLACK;
            color[w] = RED;
            this.rotateLeft(w);
            w = left[parent[x]!]!;
          }
          const px = parent[x]!;
          color[w] = color[px]!;
          color[px] = BLACK;
          color[left[w]!] = BLACK;
          this.rotateRight(px);
          x = this.root;
        }
      }
    }
    color[x] = BLACK;
  }

  /**
   * Checks the red-black and ordering invariants; returns a description of the first violation or
   * null. For tests (O(n)).
   */
  validate(): string | null {
    if (this.color[NIL] !== BLACK) return "NIL is red";
    if (this.root !== NIL && this.color[this.root] !== BLACK) return "root is red";
    let seen = 0;
    const walk = (n: number, min: number, max: number): number => {
      if (n === NIL) return 1;
      seen++;
      const k = this.lo[n]!;
      if (!(k > min && k < max)) throw new Error(`order violated at node ${n} (lo ${k})`);
      const l = this.left[n]!;
      const r = this.right[n]!;
      if (l !== NIL && this.parent[l] !== n) throw new Error(`bad parent link below ${n}`);
      if (r !== NIL && this.parent[r] !== n) throw new Error(`bad parent link below ${n}`);
      if (this.color[n] === RED && (this.color[l] === RED || this.color[r] === RED))
        throw new Error(`red node ${n} has a red child`);
      const bl = walk(l, min, k);
      const br = walk(r, k, max);
      if (bl !== br) throw new Error(`black height differs below ${n}`);
      return bl + (this.color[n] === BLACK ? 1 : 0);
    };
    try {
      walk(this.root, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
    } catch (e) {
      return (e as Error).message;
    }
    if (seen !== this.count) return `count ${this.count} but ${seen} nodes reachable`;
    return null;
  }
}
