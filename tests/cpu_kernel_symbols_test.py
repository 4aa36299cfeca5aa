#!/usr/bin/env python3
"""The CPU backend's per-level kernel objects (cpu_<family>_<level>.cpp, built with that level's
-m flags) define symbols only inside bpt::cpu_<level>::. Any other definition there (an inline
standard-library function, a helper outside the namespace) is a weak or global symbol the linker
may pick for callers that run on any CPU: an AVX-512 instruction on a CPU without it.

    cpu_kernel_symbols_test.py NM LIBRARY
"""
import re
import subprocess
import sys

LEVEL_MEMBER = re.compile(r"cpu_[a-z]+_(portable|avx2|avx512bf16|avx512)\.cpp\.o$")


def main():
    nm, library = sys.argv[1], sys.argv[2]
    listing = subprocess.run([nm, "-A", "--defined-only", library], check=True, capture_output=True,
                             text=True).stdout
    checked, bad = set(), []
    for line in listing.splitlines():
        # "LIBRARY:MEMBER:ADDRESS TYPE MANGLED-NAME"
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        member, fields = parts[1], parts[2].split()
        level = LEVEL_MEMBER.search(member)
        if not level or len(fields) < 3:
            continue
        checked.add(member)
        kind, name = fields[1], fields[2]
        if kind.islower() and kind not in ("u", "v", "w"):
            continue  # local: never shared with another object
        if re.match(r"_ZT[IS]", name):
            continue  # type_info data (UBSan emits it for function types): no instructions
        namespace = "cpu_" + level.group(1)
        # Functions, template instances, lambdas inside them (_ZZ), vtables, guards: all mangle
        # the namespace as N3bpt<len><name>.
        if not re.match(r"_Z(?:Z|TV|G[VR])?N3bpt%d%s" % (len(namespace), namespace), name):
            bad.append("%s: %s %s" % (member, kind, name))
    if not checked:
        print("no per-level kernel objects found in %s" % library)
        return 1
    for b in bad:
        print("outside its level's namespace: " + b)
    print("%d per-level objects checked, %d symbols outside their namespace" % (len(checked), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
