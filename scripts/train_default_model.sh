#!/bin/sh
# Trains the model gpt2kit ships (src/gpt2kit/default_model) from scratch on the King James Bible.
# The text is tests/fixtures/kjv.txt.xz (public domain, from Debian's bible-kjv packages) with the
# verse references ("Ge1:1 ") stripped. Run from the repository root after `make setup`.
#
# PRESET (pocket-wide: 6 layers, 192 wide), BATCH windows of 256 tokens, DROPOUT 0.2, AdamW with a cosine
# schedule from 1.5e-3 to 1e-4, evaluated on the last 2% of the text every EVAL_EVERY steps (the same
# 32,768-token span at any BATCH). PHASES are the steps of one run, each `max-steps:schedule-steps`, as the
# shipped model was trained: 1,350 steps on the schedule of an 1,800-step run, resumed to 2,400 (the
# learning rate rises from 2.6e-4 to 6.8e-4 and anneals again), resumed to 2,700 on a 2,850-step schedule
# (1.9e-4 down to 1.1e-4). The model at the end is shipped. fp32: bf16 is only faster on CPUs with bf16
# instructions (PRECISION=bf16 there). RESUME=1 continues a run; TRAIN_ONLY=1 skips the conversion.
set -e
work=${WORK:-.train-default}
mkdir -p "$work"
xz -dc tests/fixtures/kjv.txt.xz | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' > "$work/kjv.txt"
run() {
    .venv/bin/gpt2kit finetune --data "$work/kjv.txt" --out "$work/run" \
        --from-scratch "${PRESET:-pocket-wide}" --seq-len 256 --batch-size "${BATCH:-8}" --dropout "${DROPOUT:-0.2}" \
        --base-lr 1.5e-3 --min-lr 1e-4 --schedule cosine --warmup-steps 50 --weight-decay 0.1 \
        --val-fraction 0.02 --eval-batches 16 --precision "${PRECISION:-fp32}" --seed 0 \
        --eval-every "${EVAL_EVERY:-150}" --save-every "${EVAL_EVERY:-150}" \
        --sample-prompt "And the LORD said" --sample-every 300 "$@"
}
start=--overwrite
[ -n "$RESUME" ] && start=--resume
for phase in ${PHASES:-1350:1800 2400:2400 2700:2850}; do
    run "$start" --max-steps "${phase%%:*}" --schedule-steps "${phase##*:}"
    start=--resume
done
[ -n "$TRAIN_ONLY" ] && exit 0
.venv/bin/gpt2kit convert "$work/run/model" src/gpt2kit/default_model --dtype fp16 --overwrite
# what `gpt2kit generate` and `gpt2kit info` say about the model
.venv/bin/python - <<'PY'
import json, pathlib
path = pathlib.Path("src/gpt2kit/default_model/config.json")
config = json.loads(path.read_text())
config["gpt2kit"] = {"origin": "gpt2kit's default model: 6 layers, 192 wide, trained from scratch on the King James "
                               "Bible (public domain) by scripts/train_default_model.sh"}
path.write_text(json.dumps(config, indent=2) + "\n")
PY
