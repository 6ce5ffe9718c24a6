"""word-count: counts the words of the protected dataset ($IEXEC_IN/$IEXEC_DATASET_FILENAME).

Writes $IEXEC_OUT/result.json with the total and the ten most frequent words (ties broken alphabetically,
so every worker writes the same bytes) and points computed.json at it.
"""

import collections
import json
import os
import re

TOP = 10
WORD = re.compile(r"[a-z0-9']+")

dataset = os.path.join(os.environ["IEXEC_IN"], os.environ["IEXEC_DATASET_FILENAME"])
with open(dataset, encoding="utf-8", errors="replace") as source:
    counts = collections.Counter(WORD.findall(source.read().lower()))
top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
result = {"words": sum(counts.values()), "distinct": len(counts), "top": [[w, n] for w, n in top]}
out = os.environ["IEXEC_OUT"]
path = os.path.join(out, "result.json")
with open(path, "w", encoding="utf-8") as target:
    json.dump(result, target, sort_keys=True, separators=(",", ":"))
with open(os.path.join(out, "computed.json"), "w", encoding="utf-8") as computed:
    json.dump({"deterministic-output-path": path}, computed)
