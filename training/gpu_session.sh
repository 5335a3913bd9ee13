#!/usr/bin/env bash
# Issue 10 on one lent GPU (training/RECIPES.md): the ablation runs, generative-l, its distillation
# file, the distilled students and the data-scaling runs, as one pipeline that runs detached, so
# that it outlives the 10-minute limit of one device command.
#
#   bash training/gpu_session.sh start              # launch the pipeline, return at once
#   bash training/gpu_session.sh wait 560           # sleep until it ends or 560 s pass; show progress
#   bash training/gpu_session.sh bundle             # results -> $RUNS/bundle.tar.partNN (15 MiB each)
#   bash training/gpu_session.sh collect 0 3 "$OUT" # copy parts 00..03 to $OUT (64 MiB per call at most)
#   SMOKE=1 bash training/gpu_session.sh run        # the same stages in the foreground, tiny, on the CPU
#
# Timeline (minutes from start, defaults): 0-8 generative-l; 0-6 seven small runs (A1-A5, R0, R1);
# 6-12 scaling runs S10, S30; 8-~13 distillation with generative-l; then K-gen, K-ret (6 min).
# Settings (environment): DEVICE, RUNS, PACK (a PQ pack; absent: DATA's emb_train.npy), DATA (folder
# of emb_dev/emb_open-dev, and of emb_train without PACK), SMALL_MIN, LARGE_MIN, BEAM,
# DISTILL_FRACTION, THREADS (CPU threads per process).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS:-runs/v2}
PACK=${PACK:-none}
DATA=${DATA:-data}
SMALL_MIN=${SMALL_MIN:-6}
LARGE_MIN=${LARGE_MIN:-8}
BEAM=${BEAM:-4}
DISTILL_FRACTION=${DISTILL_FRACTION:-1.0}
THREADS=${THREADS:-2}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

DATA_ARGS=(--data-dir "$DATA" --wordnet-weight 2 --device "$DEVICE" --threads "$THREADS")
[[ -f "$PACK" ]] && DATA_ARGS+=(--embeddings "$PACK")
SMALL_ARGS=(--minutes "$SMALL_MIN" --steps 10000000 --batch-size 512 --lr 2e-3 --warmup 500 --eval-every 4000)
LARGE_ARGS=(--minutes "$LARGE_MIN" --steps 10000000 --batch-size 512 --lr 1e-3 --warmup 1000 --eval-every 4000)
DISTILL_ARGS=(--beam "$BEAM" --batch-size 2048 --data-fraction "$DISTILL_FRACTION")
if [[ "$SMOKE" == 1 ]]; then  # plumbing check on the CPU: a few steps on a few rows
    DEVICE=cpu; DATA_ARGS=(--wordnet-weight 2 --device cpu --threads 1 --limit 300 --eval-n 4)
    SMALL_ARGS=(--steps 4 --eval-every 2 --batch-size 16); LARGE_ARGS=("${SMALL_ARGS[@]}")
    DISTILL_ARGS=(--beam 2 --batch-size 16 --limit 24 --max-new-tokens 8)
fi

GEN=(--model-config assets/generative/config.json --tokenizer assets/tokenizers/bpe-2048/tokenizer.json)
ADALN=(--set conditioning=adaln n_prefix=0 bridge_per_layer=false bridge_hidden=128 ffn_hidden=320)      # 1,934,147
ADALN_PREFIX=(--set conditioning=adaln+prefix bridge_per_layer=false bridge_hidden=128 ffn_hidden=256)  # 1,922,627
RET=(--model-config assets/ret/config.json)                                                             # 756,352
RET_ADALN=(--set conditioning=adaln+prefix bridge_hidden=64 ffn_hidden=272)                             # 753,728
LARGE=(--model-config assets/generative-l/config.json --tokenizer assets/generative-l/tokenizer.json)    # 26,831,616
KD="$RUNS/kd_generative-l.tsv"

train() {  # train NAME KIND ARGS...: one run, its log in $RUNS/NAME.log
    local name=$1 kind=$2; shift 2
    echo "$(date +%T) start $name" >> "$RUNS/pipeline.log"
    if python -m training "$kind" --out "$RUNS/$name" "$@" > "$RUNS/$name.log" 2>&1; then
        echo "$(date +%T) done $name" >> "$RUNS/pipeline.log"
    else
        echo "$(date +%T) FAILED $name (see $RUNS/$name.log)" >> "$RUNS/pipeline.log"
    fi
}

pipeline() {
    mkdir -p "$RUNS"
    echo "$(date +%T) pipeline on $DEVICE, pack ${PACK} ($( [[ -f $PACK ]] && echo present || echo absent))" >> "$RUNS/pipeline.log"
    train L generative "${LARGE[@]}" "${LARGE_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 &
    local large=$!
    local small=()
    train A1 generative "${GEN[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0 & small+=($!)
    train A2 generative "${GEN[@]}" "${ADALN[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0 & small+=($!)
    train A3 generative "${GEN[@]}" "${ADALN_PREFIX[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0 & small+=($!)
    train A4 generative "${GEN[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 & small+=($!)
    train A5 generative "${GEN[@]}" "${ADALN_PREFIX[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 & small+=($!)
    train R0 ret "${RET[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 & small+=($!)
    train R1 ret "${RET[@]}" "${RET_ADALN[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 & small+=($!)
    wait "${small[@]}"
    train S10 generative "${GEN[@]}" "${ADALN_PREFIX[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 \
        --data-fraction 0.1 & local s10=$!
    train S30 generative "${GEN[@]}" "${ADALN_PREFIX[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 \
        --data-fraction 0.3 & local s30=$!
    wait "$large"
    echo "$(date +%T) start distill" >> "$RUNS/pipeline.log"
    local distill_data=(--data-dir "$DATA")
    [[ -f "$PACK" && "$SMOKE" != 1 ]] && distill_data+=(--embeddings "$PACK")
    if python -m tools.distill --teacher "$RUNS/L" --split train --out "$KD" --device "$DEVICE" \
        "${distill_data[@]}" "${DISTILL_ARGS[@]}" > "$RUNS/distill.log" 2>&1; then
        echo "$(date +%T) done distill" >> "$RUNS/pipeline.log"
        train KG generative "${GEN[@]}" "${ADALN_PREFIX[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 \
            --kd "$KD" --kd-weight 1.0 &
        local kg=$!
        train KR ret "${RET[@]}" "${SMALL_ARGS[@]}" "${DATA_ARGS[@]}" --noise 0.2 --kd "$KD" --kd-weight 1.0 &
        local kr=$!
        wait "$kg" "$kr"
    else
        echo "$(date +%T) FAILED distill (see $RUNS/distill.log)" >> "$RUNS/pipeline.log"
    fi
    wait "$s10" "$s30"
    echo "$(date +%T) DONE" >> "$RUNS/pipeline.log"
}

progress() {
    cat "$RUNS/pipeline.log" 2>/dev/null || echo "no $RUNS/pipeline.log yet"
    for f in "$RUNS"/*.log; do
        [[ "$f" == "$RUNS/pipeline.log" ]] && continue
        echo "== $f"; tr '\r' '\n' < "$f" | grep -v '^\s*$' | tail -n 2 | cut -c1-300
    done
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
}

bundle() {  # the students to ship (KG, KR) whole, every other run as bfloat16 weights + logs; BUNDLE_KD=1 adds the KD file
    local files=()
    for d in "$RUNS"/*/; do
        d=${d%/}
        local name; name=$(basename "$d")
        [[ -f "$d/model.safetensors" && "$name" != export ]] || continue
        if [[ "$name" == KG || "$name" == KR ]]; then
            for f in config.json model.safetensors tokenizer.json train_args.json train_log.jsonl train_state.pt; do
                [[ -f "$d/$f" ]] && files+=("$d/$f")
            done
        else
            python -m training export "$d" --out "$RUNS/export/$name" --dtype bfloat16 > /dev/null
            files+=("$RUNS/export/$name")
        fi
    done
    [[ "${BUNDLE_KD:-0}" == 1 && -f "$KD" ]] && { gzip -kf "$KD"; files+=("$KD.gz" "$KD.json"); }
    files+=("$RUNS"/*.log)
    tar cf "$RUNS/bundle.tar" "${files[@]}"
    rm -f "$RUNS"/bundle.tar.part*
    split -b 15M -d -a 2 "$RUNS/bundle.tar" "$RUNS/bundle.tar.part"
    ls -l "$RUNS"/bundle.tar.part* | awk '{print $5, $9}'
}

case "${1:-}" in
    start) mkdir -p "$RUNS"; setsid nohup bash "$0" run > "$RUNS/nohup.log" 2>&1 < /dev/null & echo "started: $RUNS";;
    run) pipeline;;
    wait) for _ in $(seq "${2:-560}"); do grep -q DONE "$RUNS/pipeline.log" 2>/dev/null && break; sleep 1; done
          progress;;
    bundle) bundle;;
    collect) for i in $(seq -f %02g "$2" "$3"); do [[ -f "$RUNS/bundle.tar.part$i" ]] && cp "$RUNS/bundle.tar.part$i" "$4/"; done
             ls -l "$4";;
    *) sed -n '2,19p' "$0"; exit 2;;
esac
