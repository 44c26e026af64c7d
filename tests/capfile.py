"""An independent encoder of the memlens capture format v1, for tests.

Written from csrc/format/format.h (not from capture/writer.c), so that tests
built on it check the reader against the spec, and a byte comparison with a
golden file made by writer.c checks that the writer follows the spec too.

    cap = Capture()
    site_a = cap.site("app.py", "load", 10)        # CODE_DEF + FRAME_DEF
    t_list = cap.type_def("list")
    s1 = cap.alloc(site_a, t_list, 100)            # -> seq 1
    cap.free(s1)
    cap.save(path)                                 # with a TRAILER

Every method returns what the format says the record creates (ids, seqs),
and the object keeps the model the reader must rebuild (live blocks, time,
per-thread stacks) so tests can compare against it.
"""
import json
import struct

MAGIC = b"MLENS\0\r\n"
VERSION = 1

TAG_TIME, TAG_THREAD, TAG_THREAD_DEF, TAG_CODE_DEF = 0x01, 0x02, 0x03, 0x04
TAG_FRAME_DEF, TAG_TYPE_DEF, TAG_MEMORY, TAG_CONTEXT = 0x05, 0x06, 0x07, 0x08
TAG_REUSE, TAG_MARK, TAG_NOTE, TAG_TRAILER, TAG_FORK = 0x09, 0x0A, 0x0B, 0x0C, 0x0D
TAG_GC_START, TAG_GC_STOP = 0x0E, 0x0F  # version 2: garbage collector
TAG_GARBAGE_AT_EXIT, TAG_UNCOLLECTABLE = 0x1A, 0x1B  # version 2, gcexit
GCSEQS_MAX = 4096
TAG_FREE, TAG_FREE_LONG, TAG_ALLOC = 0x40, 0x7F, 0x80
# rss (version 2): RSS_SAMPLE and its fields, in record order (docs/FORMAT.md)
TAG_RSS_SAMPLE = 0x17
TAG_NATIVE_STACK, TAG_NATIVE_ALLOC, TAG_MAPPING = 0x14, 0x15, 0x16  # version 2: native stacks
TAG_SNAPSHOT, TAG_OWNER, TAG_HOLDER, TAG_HELD = 0x10, 0x11, 0x12, 0x13  # version 2: heap at exit
TAG_OWNERS = 0x1C  # version 2: heap at exit, owners in a batch
OWNERS_MAX = 4096
SNAP_END, SNAP_EXIT, SNAP_CALL, SNAP_SIGNAL, SNAP_OWNERS = 0, 1, 2, 3, 4
TAG_ARENA, TAG_ARENA_BLOCKS = 0x18, 0x19  # pymalloc arenas at the end
RSS_FIELDS = ("rss", "anonymous", "thread_stacks", "arenas_resident", "pymalloc_used",
              "malloc_used", "malloc_free", "memlens_tables", "traced", "traced_small",
              "native_traced", "arenas", "file_backed", "memlens_static", "anon_other")
FREE_INLINE_MAX = 62
SLOT_EXPLICIT = 31
SLOTS = 31

RAW, MEM, OBJ = 0, 1, 2
TYPEF_METATYPE, TYPEF_BUFFER = 1, 2
MARK_ENTER, MARK_EXIT, MARK_LABEL = 1, 2, 3
NOTE_WARNING, NOTE_TRACER_LOST = 1, 2


def uv(n):
    """Unsigned LEB128."""
    if n < 0:
        raise ValueError("uv of a negative number")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def sv(n):
    """Zigzag (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...), then LEB128."""
    return uv(2 * n if n >= 0 else -2 * n - 1)


def string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return uv(len(b)) + b


def slot_of(stack, type_):
    """format.h ml_slot_of, in 32-bit unsigned arithmetic."""
    h = ((stack * 0x9E3779B1) & 0xFFFFFFFF) ^ ((type_ * 0x85EBCA77) & 0xFFFFFFFF)
    return (h >> 16) % SLOTS


DEFAULT_META = {"python": "3.12.1", "pid": 1234, "argv": ["demo.py"],
                "start_time_us": 1700000000000000, "options": {}}


class Capture:
    def __init__(self, meta=None, version=VERSION):
        self.meta = DEFAULT_META if meta is None else meta
        self.version = version
        self.body = bytearray()
        self.ncodes = self.nframes = self.ntypes = 0
        self.last_seq = 0
        self.cache = [(0, 0)] * SLOTS
        # the model the reader must rebuild
        self.live = {}          # seq -> (size, stack, type, domain)
        self.time_us = 0
        self.thread = 0
        self.context = {}       # thread -> stack
        self.events = []        # what ml_reader_next must return, in order
        self.lines = {}         # frame id -> line

    # ---- definitions ----
    def code_def(self, file, name, firstlineno, linemap=()):
        """linemap: (byte offset, line) pairs in offset order; line 0 = none."""
        self.ncodes += 1
        rec = bytearray([TAG_CODE_DEF]) + uv(self.ncodes) + string(file) + string(name)
        rec += uv(firstlineno) + uv(len(linemap))
        prev_off, prev_line = 0, firstlineno
        for off, line in linemap:
            rec += uv(off - prev_off) + sv(line - prev_line)
            prev_off, prev_line = off, line
        self.body += rec
        return self.ncodes

    def frame_def(self, parent, code, offset, line=None):
        self.nframes += 1
        self.body += bytes([TAG_FRAME_DEF]) + uv(self.nframes) + uv(parent) + uv(code) + uv(offset)
        if line is not None:
            self.lines[self.nframes] = line
        return self.nframes

    def site(self, file, function, line, parent=0):
        """A code whose line map puts `line` at offset 2, and a frame there."""
        code = self.code_def(file, function, max(line - 1, 1), [(0, max(line - 1, 1)), (2, line)])
        return self.frame_def(parent, code, 2, line)

    def type_def(self, name, flags=0):
        self.ntypes += 1
        self.body += bytes([TAG_TYPE_DEF]) + uv(self.ntypes) + string(name) + uv(flags)
        return self.ntypes

    def native_kind(self, library):
        """The buffer kind of the native blocks a library made (--native:
        docs/FORMAT.md, "Native allocations"); allocate them with domain=RAW."""
        return self.type_def("<native: %s>" % library, TYPEF_BUFFER)

    def thread_def(self, thread, os_tid, name):
        self.body += bytes([TAG_THREAD_DEF]) + uv(thread) + uv(os_tid) + string(name)

    # ---- state ----
    def time(self, dt_us):
        self.body += bytes([TAG_TIME]) + uv(dt_us)
        self.time_us += dt_us

    def switch_thread(self, thread):
        self.body += bytes([TAG_THREAD]) + uv(thread)
        self.thread = thread

    def context_stack(self, stack):
        self.body += bytes([TAG_CONTEXT]) + uv(stack)
        self.context[self.thread] = stack

    # ---- events ----
    def _event(self, kind, **fields):
        ev = {"kind": kind, "time_us": self.time_us, "thread": self.thread}
        ev.update(fields)
        self.events.append(ev)

    def alloc(self, stack, type_, size, domain=OBJ):
        slot = slot_of(stack, type_)
        tag = TAG_ALLOC | domain << 5
        if self.cache[slot] == (stack, type_):
            rec = bytes([tag | slot])
        else:
            rec = bytes([tag | SLOT_EXPLICIT]) + uv(stack) + uv(type_)
            self.cache[slot] = (stack, type_)
        self.body += rec + uv(size)
        self.last_seq += 1
        seq = self.last_seq
        self.live[seq] = (size, stack, type_, domain)
        self.context[self.thread] = stack
        self._event("alloc", domain=domain, seq=seq, size=size, stack=stack, type=type_)
        return seq

    def free(self, seq):
        d = self.last_seq - seq
        if d <= FREE_INLINE_MAX:
            self.body += bytes([TAG_FREE + d])
        else:
            self.body += bytes([TAG_FREE_LONG]) + uv(d - FREE_INLINE_MAX - 1)
        size, stack, type_, domain = self.live.pop(seq)
        self._event("free", domain=domain, seq=seq, size=size, stack=stack, type=type_,
                    at_stack=self.context.get(self.thread, 0))

    def reuse(self, type_):
        self.body += bytes([TAG_REUSE]) + uv(type_)
        self._event("reuse", type=type_, stack=self.context.get(self.thread, 0))

    def memory(self, rss, heap):
        self.body += bytes([TAG_MEMORY]) + uv(rss) + uv(heap)
        self._event("memory", rss=rss, heap=heap)

    def mark(self, kind, label):
        self.body += bytes([TAG_MARK]) + uv(kind) + string(label)
        self._event("mark", mark_kind=kind, text=label)

    def note(self, kind, text):
        self.body += bytes([TAG_NOTE]) + uv(kind) + string(text)
        self._event("note", note_kind=kind, text=text)

    def fork(self, child_pid):
        self.body += bytes([TAG_FORK]) + uv(child_pid)
        self._event("fork", child_pid=child_pid)

    def rss_sample(self, fields):
        """rss: an RSS_SAMPLE record (version 2) with these fields, in
        RSS_FIELDS order; the reader takes missing ones as 0."""
        self.body += bytes([TAG_RSS_SAMPLE]) + uv(len(fields)) + b"".join(uv(f) for f in fields)
        full = list(fields[:len(RSS_FIELDS)]) + [0] * (len(RSS_FIELDS) - len(fields))
        self._event("rss", fields=full)

    # ---- version 2: garbage collector (docs/FORMAT.md "GC records") ----
    def gc_start(self, generation, t_us, stack=0):
        self.body += bytes([TAG_GC_START]) + uv(generation) + uv(t_us) + uv(stack)
        ev = {"kind": "gc_start", "time_us": t_us, "thread": self.thread,
              "generation": generation, "stack": stack}
        self.events.append(ev)

    def gc_stop(self, generation, t_us, collected, uncollectable=0):
        self.body += (bytes([TAG_GC_STOP]) + uv(generation) + uv(t_us) + uv(collected)
                      + uv(uncollectable))
        ev = {"kind": "gc_stop", "time_us": t_us, "thread": self.thread,
              "generation": generation, "collected": collected, "uncollectable": uncollectable}
        self.events.append(ev)

    # ---- version 2: native stacks (docs/FORMAT.md "Native stacks") ----
    def mapping(self, start, end, offset, path, build_id=b""):
        """A MAPPING: an executable segment [start, end) of `path` from its
        file offset `offset`; build_id: raw bytes."""
        p = path.encode() if isinstance(path, str) else bytes(path)
        self.body += (bytes([TAG_MAPPING]) + uv(start) + uv(end) + uv(offset) + uv(len(p)) + p
                      + uv(len(build_id)) + bytes(build_id))

    def native_stack(self, addresses):
        """A NATIVE_STACK of return addresses (innermost first); returns its id."""
        self.nstacks = getattr(self, "nstacks", 0) + 1
        self.body += (bytes([TAG_NATIVE_STACK]) + uv(self.nstacks) + uv(len(addresses))
                      + b"".join(uv(a) for a in addresses))
        return self.nstacks

    def native_alloc(self, nstack):
        """NATIVE_ALLOC: the next alloc() was made with native stack `nstack`."""
        self.body += bytes([TAG_NATIVE_ALLOC]) + uv(nstack)

    # gcexit: GARBAGE_AT_EXIT / UNCOLLECTABLE (uv n, n x uv ascending seq delta)
    def gc_seqs(self, kind, seqs):
        tag = TAG_GARBAGE_AT_EXIT if kind == "garbage_at_exit" else TAG_UNCOLLECTABLE
        assert len(seqs) <= GCSEQS_MAX and list(seqs) == sorted(set(seqs))
        prev, deltas = 0, b""
        for s in seqs:
            deltas += uv(s - prev)
            prev = s
        self.body += bytes([tag]) + uv(len(seqs)) + deltas
        self._event(kind, seqs=list(seqs))
    # ---- version 2: heap at exit (docs/FORMAT.md "Heap at exit") ----
    def snapshot(self, kind, objects=0, duration_us=0):
        """A SNAPSHOT start (kind 1..4), or its end (kind 0) with the objects
        walked and the time it took."""
        rec = bytes([TAG_SNAPSHOT]) + uv(kind)
        if kind == SNAP_END:
            rec += uv(objects) + uv(duration_us)
        else:
            objects = duration_us = 0
        self.body += rec
        self._event("snapshot", snapshot_kind=kind, objects=objects, duration_us=duration_us)

    def owner(self, seq, owner_seq, type_):
        self.body += bytes([TAG_OWNER]) + uv(seq) + uv(owner_seq) + uv(type_)
        self._event("owner", seq=seq, owner_seq=owner_seq, type=type_)

    def owners(self, entries):
        """OWNERS: (seq, owner_seq, type) entries in any order; each seq as a
        signed delta from the one before (from 0), each owner as its signed
        distance below its seq, then the type."""
        body, prev = b"", 0
        for seq, owner_seq, type_ in entries:
            body += sv(seq - prev) + sv(seq - owner_seq) + uv(type_)
            prev = seq
        self.body += bytes([TAG_OWNERS]) + uv(len(entries)) + body
        self._event("owners", seqs=[e[0] for e in entries], owner_seqs=[e[1] for e in entries],
                    types=[e[2] for e in entries])

    def holder(self, id_, hops, retained=0):
        self.body += (bytes([TAG_HOLDER]) + uv(id_) + uv(len(hops)) + b"".join(string(h) for h in hops)
                      + uv(retained))
        self._event("holder", holder=id_, path=list(hops), retained=retained)

    def held(self, id_, seqs):
        """HELD: seqs ascending (encoded as deltas from 0)."""
        prev, deltas = 0, b""
        for q in seqs:
            deltas += uv(q - prev)
            prev = q
        self.body += bytes([TAG_HELD]) + uv(id_) + uv(len(seqs)) + deltas
        self._event("held", holder=id_, seqs=list(seqs))
    def arena(self, base, size, resident, pools, pools_used, used):
        """rss: an ARENA record (version 2): a live pymalloc arena at the
        end; arenas are numbered 0, 1, ... in file order."""
        self.body += bytes([TAG_ARENA]) + b"".join(
            uv(v) for v in (base, size, resident, pools, pools_used, used))
        index = sum(1 for e in self.events if e["kind"] == "arena")
        self._event("arena", index=index, base=base, size=size, resident=resident, pools=pools,
                    pools_used=pools_used, used=used)

    def arena_blocks(self, arena, seqs):
        """rss: an ARENA_BLOCKS record: live blocks (seqs, ascending) in arena
        number `arena`."""
        seqs = sorted(seqs)
        deltas = [b - a for a, b in zip([0] + seqs, seqs)]
        self.body += (bytes([TAG_ARENA_BLOCKS]) + uv(arena) + uv(len(seqs))
                      + b"".join(uv(d) for d in deltas))
        self._event("arena_blocks", arena=arena, seqs=seqs)

    def trailer(self, fields=None):
        if fields is None:
            frees = sum(1 for e in self.events if e["kind"] == "free")
            fields = [self.last_seq, frees, 0, 0, 0]
        self.body += bytes([TAG_TRAILER]) + uv(len(fields)) + b"".join(uv(f) for f in fields)

    def raw(self, data):
        """Arbitrary bytes (to build corrupt files)."""
        self.body += bytes(data)

    # ---- output ----
    def header(self):
        meta = json.dumps(self.meta, separators=(",", ":")).encode()
        return MAGIC + struct.pack("<II", self.version, len(meta)) + meta

    def data(self):
        return self.header() + bytes(self.body)

    def save(self, path, trailer=True):
        """Write the file; with trailer=True a TRAILER record ends it."""
        if trailer:
            self.trailer()
        with open(path, "wb") as f:
            f.write(self.data())
        return path
