#!/bin/sh
# Trains the model gpt2kit ships (src/gpt2kit/default_model) from scratch on the King James Bible.
# The text is tests/fixtures/kjv.txt.xz (public domain, from Debian's bible-kjv packages) with the
# verse references ("Ge1:1 ") stripped. Run from the repository root after `make setup`.
#
# Two phases of one run: ANNEAL_FROM steps on the cosine schedule of a SCHEDULE_STEPS-step run
# (--schedule-steps), then the run resumed to STEPS on the schedule of an ANNEAL_SCHEDULE-step run:
# the learning rate drops from 1.5e-3 to 1.9e-4 and anneals towards --min-lr (the shipped model
# stopped at step 780 of that 870-step schedule; a longer anneal gains a little more).
# fp32: bf16 is only faster on CPUs with bf16 instructions (PRECISION=bf16 there).
set -e
work=${WORK:-.train-default}
mkdir -p "$work"
xz -dc tests/fixtures/kjv.txt.xz | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' > "$work/kjv.txt"
run() {
    .venv/bin/gpt2kit finetune --data "$work/kjv.txt" --out "$work/run" \
        --from-scratch pocket --seq-len 256 --batch-size 16 \
        --base-lr 2e-3 --min-lr 1e-4 --schedule cosine --warmup-steps 30 --weight-decay 0.1 \
        --val-fraction 0.02 --eval-batches 8 --precision "${PRECISION:-fp32}" --seed 0 \
        --sample-prompt "And the LORD said" --sample-every 150 "$@"
}
run --overwrite --max-steps "${ANNEAL_FROM:-750}" --schedule-steps "${SCHEDULE_STEPS:-1800}" \
    --eval-every 150 --save-every 150
run --resume --max-steps "${STEPS:-780}" --schedule-steps "${ANNEAL_SCHEDULE:-870}" --eval-every 30 --save-every 30
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
