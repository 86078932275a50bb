"""
A strict reader of the Prometheus text exposition format (version 0.0.4),
in place of `promtool check metrics`.

Why not promtool: Debian 12 ships it only inside the `prometheus` package,
a whole monitoring server (96 MB installed, 19 MB to download) whose
install script enables and starts that server on port 9090 of the machine
running `make test`.  Installing a service to lint a text format is too
much, so this module checks what promtool's `check metrics` checks (the
parser's syntax rules and its lint rules) and a little more:

- syntax: HELP and TYPE lines, metric and label names, label value
  escapes (only \\\\, \\" and \\n), float values, an optional integer
  timestamp, a final newline;
- structure: one HELP and one TYPE per family, both before its samples; a
  family's samples together; no series twice; no label name twice in a
  series; no `__` label names;
- lint (promtool's): HELP text present, counters end in `_total`, only
  histograms and summaries use `_count`/`_sum`/`_bucket`, snake_case names,
  base units (seconds and bytes, not milliseconds or kilobytes);
- histograms: every series has buckets ascending by `le`, counts
  cumulative, a `+Inf` bucket equal to `_count`, and a `_sum`; counters
  are never negative.

check(text) raises AssertionError naming the line; it returns
(samples, types): {(name, frozenset(labels.items())): value} and
{family: type}.
"""

import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r'"((?:\\[\\"n]|[^"\\\n])*)"'
SAMPLE = re.compile(r"^(?P<name>%s)(?:\{(?P<labels>(?:%s=%s)(?:,%s=%s)*,?)?\})?"
                    r" (?P<value>\S+)(?: (?P<ts>-?[0-9]+))?$"
                    % (NAME, LABEL, VALUE, LABEL, VALUE))
PAIR = re.compile(r"(%s)=%s" % (LABEL, VALUE))
FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?Inf$|^NaN$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
BAD_UNITS = re.compile(r"_(milliseconds|microseconds|nanoseconds|minutes|hours|days|"
                       r"kilobytes|megabytes|gigabytes|bits|percent)(_|$)")


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _float(text, where):
    assert FLOAT.match(text), "%s: not a float: %r" % (where, text)
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def _family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def check(text):
    assert text.endswith("\n"), "the exposition must end with a newline"
    helps, types, samples = {}, {}, {}
    done, current = set(), None
    series_of = {}  # histogram family -> {labels without le: {...}}

    def enter(family, where):
        nonlocal current
        if family != current:
            assert family not in done, "%s: samples of %s are not together" % (where, family)
            if current is not None:
                done.add(current)
            current = family

    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d (%r)" % (n, line)
        assert line, "%s: empty line" % where
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert re.fullmatch(NAME, name), "%s: bad metric name" % where
                assert not any(k in (name, name + "_bucket", name + "_sum", name + "_count")
                               for k, _ in samples), \
                    "%s: %s after the samples of %s" % (where, parts[1], name)
                if parts[1] == "HELP":
                    assert name not in helps, "%s: second HELP for %s" % (where, name)
                    assert len(parts) == 4 and parts[3].strip(), "%s: no help text" % where
                    assert not re.search(r"\\[^\\n]", parts[3]), "%s: bad escape in HELP" % where
                    helps[name] = parts[3]
                else:
                    assert name not in types, "%s: second TYPE for %s" % (where, name)
                    assert len(parts) == 4 and parts[3] in TYPES, "%s: bad type" % where
                    types[name] = parts[3]
                enter(name, where)
            continue
        m = SAMPLE.match(line)
        assert m, "%s: not a sample line" % where
        name, labeltext, value = m.group("name"), m.group("labels") or "", m.group("value")
        family = _family_of(name, types)
        enter(family, where)
        pairs = PAIR.findall(labeltext)
        names = [k for k, _ in pairs]
        assert len(names) == len(set(names)), "%s: a label twice" % where
        assert not any(k.startswith("__") for k in names), "%s: reserved label name" % where
        labels = frozenset((k, _unescape(v)) for k, v in pairs)
        v = _float(value, where)
        key = (name, labels)
        assert key not in samples, "%s: series given twice" % where
        samples[key] = v
        kind = types.get(family, "untyped")
        if kind == "counter":
            assert v >= 0 or math.isnan(v), "%s: negative counter" % where
        if kind == "histogram":
            rest = frozenset(p for p in labels if p[0] != "le")
            s = series_of.setdefault(family, {}).setdefault(rest, {"buckets": []})
            if name.endswith("_bucket"):
                le = dict(labels).get("le")
                assert le is not None, "%s: bucket without le" % where
                s["buckets"].append((_float(le, where), v))
            else:
                s[name[len(family) + 1:]] = v
    done.add(current)

    for family, kind in types.items():
        where = "family %s" % family
        assert family in helps, "%s: no HELP" % where
        assert re.fullmatch(r"[a-z_:][a-z0-9_:]*", family), "%s: not snake_case" % where
        assert not BAD_UNITS.search(family), "%s: use base units (seconds, bytes)" % where
        if kind == "counter":
            assert family.endswith("_total"), "%s: a counter's name ends in _total" % where
        elif kind not in ("histogram", "summary"):
            assert not re.search(r"_(total|count|sum|bucket)$", family), \
                "%s: %s with a counter or histogram suffix" % (where, kind)
    for name, _ in samples:
        assert _family_of(name, types) in types, "%s: sample without TYPE" % name
    for family, per in series_of.items():
        for labels, s in per.items():
            where = "histogram %s%s" % (family, dict(labels))
            b = s["buckets"]
            assert b, "%s: no buckets" % where
            les = [le for le, _ in b]
            assert les == sorted(les) and len(set(les)) == len(les), "%s: le not ascending" % where
            assert les[-1] == math.inf, "%s: no +Inf bucket" % where
            counts = [c for _, c in b]
            assert counts == sorted(counts), "%s: buckets not cumulative" % where
            assert "count" in s and "sum" in s, "%s: _count or _sum missing" % where
            assert s["count"] == counts[-1], "%s: _count differs from the +Inf bucket" % where
    return samples, types
