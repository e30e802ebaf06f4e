#!/usr/bin/env bash
# Trains InstaFlow-Twemoji v2.1 (issue 17) stage by stage with the InstaFlow recipe: VAE, 1-RF (uniform, then balanced
# over emojis), pairs, 2-RF, pairs, distill, evaluation. Every stage resumes from its checkpoints, so after any interruption run the same command again.
#
#   scripts/train-twemoji-v2.sh [STAGE...]     # stages: data vae flow flow2 pairs1 reflow pairs2 distill eval (default: all)
#
# Environment: RUNS (default runs/v2), DATA (default data/twemoji), INSTAFLOW (the instaflow binary; default: the
# Release build), and the step counts below. The sizes and counts are the ones recorded in docs/EXPERIMENTS.md
# ("Twemoji v2" and "Twemoji v2.1"); changing one changes the model.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-runs/v2}
DATA=${DATA:-data/twemoji}
I=${INSTAFLOW:-src/InstaFlow.Cli/bin/Release/net10.0/instaflow}
TOKENIZER=models/twemoji-instaflow/tokenizer
CLASSIFIER=models/twemoji-instaflow/eval_classifier

VAE_STEPS=${VAE_STEPS:-6000}
FLOW_STEPS=${FLOW_STEPS:-12000}
# flow2 continues the 1-RF from its step-FLOW_STEPS checkpoint to FLOW2_STEPS with every emoji drawn equally often
# (--balance: 1,829 emojis, 1,507 of them a single image that uniform draws show half as often)
FLOW2_STEPS=${FLOW2_STEPS:-20000}
PAIRS1=${PAIRS1:-12288}
REFLOW_STEPS=${REFLOW_STEPS:-2000}
PAIRS2=${PAIRS2:-16384}
DISTILL_STEPS=${DISTILL_STEPS:-2000}
# The networks: text encoder 128 wide, 3 layers; UNet block_out_channels 64,128,128 (cross-attention on the two finer
# levels and the middle, as v1).
ARCH=(--channels 64,128,128 --text-hidden 128 --text-layers 3 --max-tokens 16)

if [ ! -x "$I" ]; then
  echo "error: $I is not built; run: dotnet build InstaFlow.slnx -c Release (or set INSTAFLOW)" >&2
  exit 1
fi
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(data vae flow flow2 pairs1 reflow pairs2 distill eval)

for stage in "${stages[@]}"; do
  echo "== $stage ($(date -u +%H:%M:%S) UTC)"
  case "$stage" in
    data)
      [ -f "$DATA/captions.jsonl" ] || "$I" data twemoji --out "$DATA" ;;
    vae)
      "$I" train vae --data "$DATA" --out "$RUNS/vae" --steps "$VAE_STEPS" --batch 16 --lr 2e-3 --channels 16,32,32 --groups 8 \
        --seed 1 --decay-from $((VAE_STEPS * 3 / 4)) --min-lr 2e-4 --ema 0.999 --eval-every 500 ;;
    flow)
      "$I" train flow --data "$DATA" --vae "$RUNS/vae/vae" --tokenizer "$TOKENIZER" --out "$RUNS/flow" "${ARCH[@]}" \
        --batch 32 --lr 5e-4 --ema 0.999 --seed 1 --checkpoint-every 50 --steps "$FLOW_STEPS" --decay-from $((FLOW_STEPS * 3 / 4)) \
        --eval-every 500 ;;
    flow2)
      # the same run resumed in its own folder: its optimizer, EMA and generator state carry on; the learning rate is
      # back at --lr (the schedule is constant before --decay-from) and decays again over the last quarter
      if [ ! -f "$RUNS/flow2/checkpoints/state.json" ]; then
        grep -q "\"step\":$FLOW_STEPS," "$RUNS/flow/checkpoints/state.json" || { echo "error: flow2 starts from the 1-RF's step-$FLOW_STEPS checkpoint; finish the flow stage first" >&2; exit 1; }
        mkdir -p "$RUNS/flow2/checkpoints" && cp "$RUNS/flow/checkpoints/"* "$RUNS/flow2/checkpoints/"
      fi
      "$I" train flow --data "$DATA" --vae "$RUNS/vae/vae" --tokenizer "$TOKENIZER" --out "$RUNS/flow2" "${ARCH[@]}" --balance \
        --batch 32 --lr 5e-4 --ema 0.999 --seed 1 --checkpoint-every 50 --steps "$FLOW2_STEPS" \
        --decay-from $((FLOW2_STEPS - (FLOW2_STEPS - FLOW_STEPS) * 3 / 8)) --eval-every 500 ;;
    pairs1)
      "$I" train pairs --data "$DATA" --model "$RUNS/flow2/model" --out "$RUNS/pairs1" --steps 8 --guidance 2 --batch 64 \
        --shard 128 --seed 2 --count "$PAIRS1" --balance ;;
    reflow)
      "$I" train reflow --data "$DATA" --model "$RUNS/flow2/model" --pairs "$RUNS/pairs1" --out "$RUNS/reflow" --batch 32 \
        --lr 2e-4 --ema 0.999 --seed 3 --checkpoint-every 50 --steps "$REFLOW_STEPS" --decay-from $((REFLOW_STEPS * 3 / 4)) ;;
    pairs2)
      "$I" train pairs --data "$DATA" --model "$RUNS/reflow/model" --out "$RUNS/pairs2" --steps 4 --guidance 1 --batch 64 \
        --shard 128 --seed 5 --count "$PAIRS2" --balance ;;
    distill)
      "$I" train distill --data "$DATA" --model "$RUNS/reflow/model" --pairs "$RUNS/pairs2" --out "$RUNS/distill" --batch 32 \
        --lr 2e-4 --ema 0.999 --seed 6 --checkpoint-every 50 --steps "$DISTILL_STEPS" --decay-from $((DISTILL_STEPS * 3 / 4)) ;;
    eval)
      "$I" eval twemoji --data "$DATA" --classifier "$CLASSIFIER" --1rf "$RUNS/flow2/model" --2rf "$RUNS/reflow/model" \
        --distilled "$RUNS/distill/model" --guidance 2 --json "$RUNS/eval.json" ;;
    *)
      echo "error: unknown stage '$stage' (stages: data vae flow flow2 pairs1 reflow pairs2 distill eval)" >&2
      exit 2 ;;
  esac
done
