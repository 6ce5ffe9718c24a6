"""hello: writes a greeting with its arguments to $IEXEC_OUT/result.txt (iExec's first iApp)."""

import json
import os
import sys

out = os.environ["IEXEC_OUT"]
who = " ".join(sys.argv[1:]) or "world"
path = os.path.join(out, "result.txt")
with open(path, "w", encoding="utf-8") as result:
    result.write(f"Hello, {who}!\n")
with open(os.path.join(out, "computed.json"), "w", encoding="utf-8") as computed:
    json.dump({"deterministic-output-path": path}, computed)
