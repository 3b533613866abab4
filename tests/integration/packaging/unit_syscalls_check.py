#!/usr/bin/env python3
"""Checks an strace -f log of a node against the sandbox of a systemd unit.

Every system call that the broker or any of its children made must pass the unit's
SystemCallFilter= lines, every namespace type passed to unshare/clone/clone3/setns
must be in RestrictNamespaces=, and every address family given to socket() or
socketpair() must be in RestrictAddressFamilies=. The filter is expanded with
`systemd-analyze syscall-filter` (its groups, recursively) and applied the way
systemd applies it: the first line decides allow-list or deny-list mode (an
allow-list implicitly starts from @default), and each later line adds (allow) or
removes (~deny) its calls, in order.

usage: unit_syscalls_check.py UNIT STRACE_LOG [--optional CALL]...
--optional names a call the node may make and copes without (it reads the EPERM the
unit answers as "not available"), e.g. pidfd_getfd, which only the documented ptrace
drop-in allows. Prints what it saw and every violation; exits 1 on any violation,
2 on bad input.
"""
import re
import subprocess
import sys

NS_FLAGS = {
    "CLONE_NEWNS": "mnt", "CLONE_NEWUTS": "uts", "CLONE_NEWIPC": "ipc",
    "CLONE_NEWUSER": "user", "CLONE_NEWPID": "pid", "CLONE_NEWNET": "net",
    "CLONE_NEWCGROUP": "cgroup", "CLONE_NEWTIME": "time",
}


def unit_settings(path):
    """The unit's [Service] assignments, in order, as (key, value) pairs."""
    out, section = [], None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                out.append((k.strip(), v.strip()))
    return out


def syscall_groups():
    """{"@group": [members...]} from systemd-analyze (members may be groups)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                          check=True, capture_output=True, text=True).stdout
    groups, cur = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not line.startswith(" ") and s.startswith("@"):
            cur = groups.setdefault(s, [])
        elif cur is not None and line.startswith(" "):
            cur.append(s)
        else:
            cur = None  # e.g. the trailing list of calls in no group
    return groups


def expand(name, groups, seen=None):
    if not name.startswith("@"):
        return {name}
    if name not in groups:
        raise SystemExit(f"unknown syscall group {name}")
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    out = set()
    for m in groups[name]:
        out |= expand(m, groups, seen)
    return out


def syscall_policy(settings, groups):
    """(allow_list_mode, calls): the allowed set in allow-list mode, else the denied set."""
    mode, calls = None, set()
    for k, v in settings:
        if k != "SystemCallFilter":
            continue
        if not v:
            mode, calls = None, set()
            continue
        deny = v.startswith("~")
        names = set()
        for tok in v.lstrip("~").split():
            names |= expand(tok.split(":")[0], groups)  # "name:errno" keeps the name
        if mode is None:
            mode = "allow" if not deny else "deny"
            calls = expand("@default", groups) | names if mode == "allow" else names
        elif mode == "allow":
            calls = calls - names if deny else calls | names
        else:
            calls = calls | names if deny else calls - names
    return mode, calls


def last_list(settings, key):
    vals = [v for k, v in settings if k == key]
    if not vals or vals[-1] == "":
        return None  # unrestricted
    v = vals[-1]
    if v in ("yes", "true"):
        return (False, set())
    if v in ("no", "false"):
        return None
    deny = v.startswith("~")
    return (deny, set(v.lstrip("~").split()))


LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_][a-z0-9_]*)(?:\(| resumed>)")


def main():
    args, optional = sys.argv[1:], set()
    while "--optional" in args:
        i = args.index("--optional")
        optional.add(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__)
        return 2
    unit, trace = args
    settings = unit_settings(unit)
    groups = syscall_groups()
    mode, calls = syscall_policy(settings, groups)

    seen = {}        # syscall -> first line
    namespaces = {}  # type -> first line
    families = {}    # AF_x -> first line
    pids = set()
    with open(trace, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            pids.add(m.group(1))
            name = m.group(2)
            if name.startswith("syscall_"):
                name = "unknown:" + name
            seen.setdefault(name, line.strip())
            if "resumed>" in line.split("(")[0]:
                continue
            if name in ("unshare", "clone", "clone3", "setns"):
                for flag, ns in NS_FLAGS.items():
                    if re.search(r"\b" + flag + r"\b", line):
                        namespaces.setdefault(ns, line.strip())
                if name == "setns" and re.search(r"setns\(\d+, 0\)", line):
                    namespaces.setdefault("any (setns nstype 0)", line.strip())
            if name in ("socket", "socketpair"):
                fm = re.search(r"\(\s*(AF_[A-Z0-9_]+|\d+)", line)
                if fm:
                    families.setdefault(fm.group(1), line.strip())

    if len(seen) < 20:
        print(f"FAIL: only {len(seen)} distinct system calls in the trace: not a trace of a node")
        return 2
    print(f"trace: {len(pids)} processes, {len(seen)} distinct system calls")
    print("  calls: " + " ".join(sorted(seen)))
    print("  namespaces: " + (" ".join(sorted(namespaces)) or "none"))
    print("  socket families: " + " ".join(sorted(families)))

    bad = 0
    for name in sorted(seen):
        allowed = (name in calls) if mode == "allow" else (name not in calls) if mode == "deny" else True
        if name.startswith("unknown:"):
            allowed = mode is None
        if not allowed and name in optional:
            print(f"optional: {name} is refused by the unit; the node copes without it")
        elif not allowed:
            bad += 1
            print(f"VIOLATION SystemCallFilter: {name} is not allowed; first use: {seen[name][:200]}")

    ns_rule = last_list(settings, "RestrictNamespaces")
    if ns_rule is not None:
        deny, listed = ns_rule
        for ns, first in sorted(namespaces.items()):
            if ns.startswith("any"):
                ok = deny and not listed  # only an unrestricted set admits setns(fd, 0)
            else:
                ok = (ns not in listed) if deny else (ns in listed)
            if not ok:
                bad += 1
                print(f"VIOLATION RestrictNamespaces: {ns} namespace; first use: {first[:200]}")

    af_rule = last_list(settings, "RestrictAddressFamilies")
    if af_rule is not None:
        deny, listed = af_rule
        for fam, first in sorted(families.items()):
            ok = (fam not in listed) if deny else (fam in listed)
            if not ok:
                bad += 1
                print(f"VIOLATION RestrictAddressFamilies: {fam}; first use: {first[:200]}")

    if bad:
        print(f"{bad} violation(s) of {unit}")
        return 1
    print("every call, namespace and address family is allowed by the unit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
