"""EXPLAIN (ANALYZE, BUFFERS) of every distinct read query, and its check: every
large table read through an index, no Sort of more rows than it returns.
"""

from .database import connect_like_django

# A sequential scan of a table larger than this many pages fails the EXPLAIN check
# (auth_user fits in one page: the planner rightly reads it whole).
SEQ_SCAN_PAGES = 8


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def judge(plan, pages):
    """What the issue asks of a hot query's plan, from EXPLAIN's JSON.

    Every table is read through an index (a sequential scan is allowed only of a
    table of a few pages, such as auth_user), and no Sort orders more rows than it
    hands on: sorting exactly the rows returned is fine (a conversation's 1,000
    messages), sorting all of a user's matches to keep 21 of them is not.
    """
    nodes = list(plan_nodes(plan["Plan"]))
    scans = [n for n in nodes if "Relation Name" in n or "Index Name" in n]
    seq = [
        n["Relation Name"]
        for n in nodes
        if n["Node Type"] == "Seq Scan" and pages.get(n["Relation Name"], 0) > SEQ_SCAN_PAGES
    ]
    indexed = any("Index" in n["Node Type"] for n in scans) or not seq
    sorts = []
    for node in nodes:
        if node["Node Type"] == "Sort":
            sorted_rows = sum(child["Actual Rows"] for child in node.get("Plans", []))
            if sorted_rows > node["Actual Rows"] + 1:
                sorts.append(f"{sorted_rows} rows sorted for {node['Actual Rows']}")
    return {
        "index_scan": indexed,
        "seq_scan": seq,
        "sort": sorts,
        "ok": indexed and not seq and not sorts,
    }


def explain(url, captured, names):
    """EXPLAIN (ANALYZE, BUFFERS) of every distinct read query; returns (text, checks)."""
    seen = {}
    with connect_like_django(url) as conn:
        cur = conn.cursor()
        pages = dict(
            cur.execute("SELECT relname, relpages FROM pg_class WHERE relkind = 'r'").fetchall()
        )
        for name in names:
            for sql, params in captured[name]["queries"]:
                literal = cur.mogrify(sql, params)
                if literal in seen:
                    seen[literal]["scenarios"].append(name)
                    continue
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + literal)
                text = "\n".join(row[0] for row in cur.fetchall())
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + literal)
                verdict = judge(cur.fetchone()[0][0], pages)
                seen[literal] = {"scenarios": [name], "plan": text, **verdict}
    parts, checks = [], []
    for literal, entry in seen.items():
        checks.append(
            {key: value for key, value in entry.items() if key != "plan"} | {"sql": literal}
        )
        seq = "YES: " + ", ".join(entry["seq_scan"]) if entry["seq_scan"] else "no"
        sort = "YES: " + ", ".join(entry["sort"]) if entry["sort"] else "no"
        verdict = (
            f"index scans {'yes' if entry['index_scan'] else 'NO'}; "
            f"sequential scan of a large table {seq}; sort of more rows than returned {sort}"
        )
        parts.append(
            f"-- {' | '.join(entry['scenarios'])}\n-- {'OK' if entry['ok'] else 'CHECK'}: "
            f"{verdict}\n{literal};\n\n{entry['plan']}\n"
        )
    return "\n\n".join(parts), checks
