"""Instructions per element of a span kernel's loops, from the disassembly (bench/RESULTS.md).

    python bench/loop_insns.py OBJDUMP OBJECT 'update_span<pyoptk::neon::Adam, 0, float, float, float, float, void>(' LANES

Disassembles the function whose demangled name contains the given text and prints each innermost
loop (a backward branch inside the function with no other one inside it): its length in
instructions, from the branch target to the branch, and per element for LANES elements an
iteration. The first one is the span loop's full-vector loop (apply.h). Speed under emulation means nothing; these counts are what a first run on real
hardware can be checked against.
"""
import re
import subprocess
import sys


def function_lines(objdump, obj, name):
    out = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", obj], check=True,
                         capture_output=True, text=True).stdout
    lines, inside = [], False
    for line in out.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            inside = name in header.group(1)
            continue
        if inside and re.match(r"^\s+[0-9a-f]+:\s", line):
            lines.append(line)
    return lines


def main():
    objdump, obj, name, lanes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lines = function_lines(objdump, obj, name)
    addrs = [int(line.split(":")[0], 16) for line in lines]
    loops = []  # (first, last) line indices
    for i, line in enumerate(lines):
        # A direct branch to an address of this function: "b.ne 1a0 <...>", "jne 1a0 <...>".
        m = re.search(r"\s(b\.\w+|b|cbn?z|tbn?z|j\w+)\s+(?:\w+,\s*)*([0-9a-f]+) <", line)
        if not m:
            continue
        target = int(m.group(2), 16)
        if target < addrs[i] and target in addrs:
            loops.append((addrs.index(target), i))
    for first, last in loops:
        if any(first <= a and b < last and (a, b) != (first, last) for a, b in loops):
            continue  # holds another loop
        n = last - first + 1
        print(f"loop at {addrs[first]:x}: {n} instructions, {n / lanes:.3g} per element")
    print(f"function: {len(lines)} instructions")


if __name__ == "__main__":
    main()
