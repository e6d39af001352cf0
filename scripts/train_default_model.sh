#!/bin/sh
# Trains the model gpt2kit ships (src/gpt2kit/default_model) from scratch on the King James Bible.
# The text is tests/fixtures/kjv.txt.xz (public domain, from Debian's bible-kjv packages) with the
# verse references ("Ge1:1 ") stripped. Run from the repository root after `make setup`.
set -e
work=${WORK:-.train-default}
mkdir -p "$work"
xz -dc tests/fixtures/kjv.txt.xz | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' > "$work/kjv.txt"
.venv/bin/gpt2kit finetune --data "$work/kjv.txt" --out "$work/run" --overwrite \
    --from-scratch pocket --seq-len 256 --batch-size 16 --max-steps "${STEPS:-450}" \
    --base-lr 2e-3 --min-lr 1e-4 --schedule cosine --warmup-steps 30 --weight-decay 0.1 \
    --val-fraction 0.02 --eval-every 150 --eval-batches 8 --precision bf16 --seed 0 \
    --sample-every 150 --sample-prompt "And the LORD said" --save-every 150
.venv/bin/gpt2kit convert "$work/run/model" src/gpt2kit/default_model --dtype fp16 --overwrite
# what `gpt2kit generate` and `gpt2kit info` say about the model
.venv/bin/python - <<'PY'
import json, pathlib
path = pathlib.Path("src/gpt2kit/default_model/config.json")
config = json.loads(path.read_text())
config["gpt2kit"] = {"origin": "gpt2kit's default model: 6 layers, 128 wide, trained from scratch on the King James "
                               "Bible (public domain) by scripts/train_default_model.sh"}
path.write_text(json.dumps(config, indent=2) + "\n")
PY
