"""Names for exported code: an export name must be a plain C *and* Verilog identifier.

The name becomes a C function prefix (``<name>_counts``) and a Verilog module name, so it is
pasted into generated source. :func:`check_identifier` accepts only ``[A-Za-z_][A-Za-z0-9_]*``
(at most :data:`MAX_LEN` characters), not a keyword of C (C89–C23) or Verilog / SystemVerilog
(IEEE 1364-2005, 1800-2017), and not a name reserved for the implementation (``__x``, ``_X``).
Anything else is refused: nothing is escaped or rewritten silently.
"""
from __future__ import annotations

import re

MAX_LEN = 64
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long register
restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local
alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
_BitInt _Decimal32 _Decimal64 _Decimal128 asm
""".split())

VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign default defparam
design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive endspecify endtable
endtask event for force forever fork function generate genvar highz0 highz1 if ifnone incdir include initial inout
input instance integer join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup
pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1
scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0
tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
alias always_comb always_ff always_latch assert assume before bind bins binsof bit break byte chandle checker class
clocking const constraint context continue cover covergroup coverpoint cross dist do endchecker endclass endclocking
endgroup endinterface endpackage endprogram endproperty endsequence enum eventually expect export extends extern
final first_match foreach forkjoin global iff ignore_bins illegal_bins implies import inside int interface
intersect join_any join_none let local logic longint matches modport new null package packed priority program
property protected pure rand randc randcase randsequence ref restrict return s_always s_eventually s_nexttime
s_until s_until_with sequence shortint shortreal solve static string strong struct super sync_accept_on
sync_reject_on tagged this throughout timeprecision timeunit type typedef union unique unique0 until until_with
untyped var virtual void wait_order weak wildcard with within accept_on checker reject_on restrict nexttime
""".split())


class IdentifierError(ValueError):
    """An export name is not a safe C/Verilog identifier; the message says why."""


def check_identifier(name: str, what: str = "--name") -> str:
    """Return ``name`` if it is a valid C and Verilog identifier and no keyword of either; else raise :class:`IdentifierError`."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise IdentifierError(f"{what}: {name!r} is not an identifier (letters, digits and _, not starting with a digit)")
    if len(name) > MAX_LEN:
        raise IdentifierError(f"{what}: {name!r} is longer than {MAX_LEN} characters")
    if name in C_KEYWORDS or name in VERILOG_KEYWORDS:
        lang = "C" if name in C_KEYWORDS else "Verilog"
        raise IdentifierError(f"{what}: {name!r} is a {lang} keyword")
    if name.startswith("__") or (name[0] == "_" and name[1:2].isupper()):
        raise IdentifierError(f"{what}: {name!r} is reserved for the C implementation (starts with __ or _ and a capital)")
    return name
