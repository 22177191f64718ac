#!/usr/bin/env python3
"""Checks Prometheus text (format 0.0.4) read on stdin, and values in it.

    holdfastctl metrics | prom_check.py [--strict] [EXPECTATION...]

The text must parse with prometheus_client's parser
(prometheus_client.parser.text_string_to_metric_families, Debian package
python3-prometheus-client) and hold to what that parser lets through: each
family has at most one HELP and one TYPE line, before its samples; every
sample is in the family its TYPE line declares; no family comes back later in
the text; no series (name and labels) appears twice. With --strict, every
family also has its HELP and TYPE lines (holdfastctl metrics always writes
them).

An EXPECTATION is NAME{LABELS}OP VALUE, for example

    'holdfast_packets_total{verdict="pass"}>=10'
    'holdfast_up==1'
    'holdfast_verdicts_total{verdict="drop"}>0'

LABELS (optional) are label="value" pairs, escaped as in the format. The
value compared is the sum of every sample of NAME whose labels include
LABELS (all of NAME's samples without LABELS); no such sample is a failure.
OP is one of == (or =), !=, >=, <=, >, <; VALUE a number (NaN, +Inf, -Inf
too).

Exit status: 0 when the text is valid and every expectation holds; 1 with
one line per problem on stderr otherwise; 2 for an expectation that does not
parse.
"""

import math
import operator
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.stderr.write("prom_check: %s has no prometheus_client (Debian's /usr/bin/python3 has it "
                     "with apt-get install python3-prometheus-client)\n" % sys.executable)
    sys.exit(1)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"'
OPS = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
EXPECTATION = re.compile(r"\s*(%s)\s*(\{.*\})?\s*(==|!=|>=|<=|=|>|<)\s*(\S+)\s*$" % NAME)
UNESCAPE = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}


class Problem(Exception):
    pass


def unescape(value):
    return re.sub(r'\\[\\n"]', lambda m: UNESCAPE[m.group(0)], value)


def parse_labels(text):
    """{a="x",b="y"} -> {"a": "x", "b": "y"}; raises Problem if malformed."""
    inner = text[1:-1].strip()
    labels = {}
    pos = 0
    label = re.compile(r"\s*%s\s*(,|$)" % LABEL)
    while pos < len(inner):
        m = label.match(inner, pos)
        if not m:
            raise Problem("labels do not parse at %r" % inner[pos:])
        if m.group(1) in labels:
            raise Problem("label %s given twice" % m.group(1))
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
    return labels


def parse_expectation(text):
    m = EXPECTATION.match(text)
    if not m:
        raise Problem("expectation %r is not NAME{LABELS}OP VALUE" % text)
    name, labels, op, value = m.groups()
    try:
        expected = float(value)
    except ValueError:
        raise Problem("expectation %r: %r is not a number" % (text, value))
    return name, parse_labels(labels) if labels else {}, op, expected


def show(name, labels):
    if not labels:
        return name
    pairs = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
                     for k, v in sorted(labels.items()))
    return "%s{%s}" % (name, pairs)


SUFFIXES = {"summary": ("", "_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}


def declarations(text):
    """family -> type ("" when it has HELP but no TYPE), from the # lines."""
    types = {}
    for line in text.split("\n"):
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
            types.setdefault(parts[2], "")
            if parts[1] == "TYPE" and len(parts) == 4:
                types[parts[2]] = parts[3].strip()
    return types


def check_structure(text, strict):
    """What prometheus_client's lax parser lets through: returns problems.
    strict: every sample's family must have its HELP and TYPE lines."""
    problems = []
    types = declarations(text)
    owner = {}  # sample name -> declared family
    for family, typ in types.items():
        for suffix in SUFFIXES.get(typ, ("",)):
            owner.setdefault(family + suffix, family)
    seen = {}  # family -> set of "HELP"/"TYPE" lines seen
    finished = set()  # families whose block is over
    current = None
    series = set()

    def enter(family, n):
        nonlocal current
        if family == current:
            return
        if family in finished:
            problems.append("line %d: family %s comes back after other families" % (n, family))
        if current is not None:
            finished.add(current)
        current = family

    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue  # a comment
            kind, family = parts[1], parts[2]
            if not re.fullmatch(NAME, family):
                problems.append("line %d: %r is not a metric name" % (n, family))
            enter(family, n)
            if kind in seen.setdefault(family, set()):
                problems.append("line %d: second %s line for %s" % (n, kind, family))
            if kind == "TYPE" and "samples" in seen[family]:
                problems.append("line %d: TYPE of %s after its samples" % (n, family))
            if kind == "TYPE" and types[family] not in ("counter", "gauge", "untyped", "summary",
                                                          "histogram"):
                problems.append("line %d: unknown type %r" % (n, types[family]))
            seen[family].add(kind)
            continue
        m = re.match(r"(%s)(\{|[ \t])" % NAME, line)
        if not m:
            problems.append("line %d: not a sample: %r" % (n, line))
            continue
        name = m.group(1)
        family = owner.get(name, name)
        if family in types and family != current:
            problems.append("line %d: sample %s outside the block of its family %s" %
                            (n, name, family))
        else:
            enter(family, n)
        seen.setdefault(family, set()).add("samples")
        if strict and not {"HELP", "TYPE"} <= seen[family]:
            problems.append("line %d: sample %s without HELP and TYPE before it" % (n, name))
        key = line[:line.rindex("}") + 1] if m.group(2) == "{" else name
        if key in series:
            problems.append("line %d: series %s appears twice" % (n, key))
        series.add(key)
    return problems


def matching(samples, name, labels, types):
    """The samples of NAME whose labels include LABELS. prometheus_client
    renames the samples of a counter family declared without _total."""
    def find(wanted):
        return [s for s in samples
                if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())]
    found = find(name)
    if not found and types.get(name) == "counter" and not name.endswith("_total"):
        found = find(name + "_total")
    return found


def holds(op, value, expected):
    if math.isnan(value) and math.isnan(expected) and op in ("==", "=", "!="):
        return op != "!="
    return OPS[op](value, expected)


def main(argv):
    args = argv[1:]
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    try:
        expectations = [parse_expectation(a) for a in args]
    except Problem as e:
        sys.stderr.write("prom_check: %s\n" % e)
        return 2
    text = sys.stdin.read()
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except Exception as e:  # the parser raises ValueError and others on bad input
        sys.stderr.write("prom_check: the text does not parse: %s: %s\n" % (type(e).__name__, e))
        return 1
    problems = check_structure(text, strict)
    types = declarations(text)
    for name, labels, op, expected in expectations:
        found = matching(samples, name, labels, types)
        wanted = "%s %s %s" % (show(name, labels), op, format(expected, "g"))
        if not found:
            present = sorted(show(s.name, s.labels) for s in samples if s.name == name)
            if present:
                more = ", ..." if len(present) > 8 else ""
                problems.append("expected %s: no such sample; %s has %s%s" %
                                (wanted, name, ", ".join(present[:8]), more))
            else:
                problems.append("expected %s: no sample named %s" % (wanted, name))
            continue
        value = math.fsum(s.value for s in found)
        if not holds(op, value, expected):
            summed = " (sum of %d samples)" % len(found) if len(found) > 1 else ""
            problems.append("expected %s: got %s%s" % (wanted, format(value, "g"), summed))
    for p in problems:
        sys.stderr.write("prom_check: %s\n" % p)
    if problems:
        return 1
    print("prom_check: %d samples valid, %d expectation%s held" %
          (len(samples), len(expectations), "" if len(expectations) == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
