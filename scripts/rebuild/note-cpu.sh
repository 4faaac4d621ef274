#!/usr/bin/env bash
# Rebuild the shipped note-cpu model from scratch: build its data, then train SING's three
# stages as recorded on its model card (one run folder, each stage continuing the run with
# --resume).
#
# usage: bash scripts/rebuild/note-cpu.sh OUT_DIR
#
# OUT_DIR/nsynth22 is the data (22 General MIDI instruments of 9 NSynth families, 4,620 /
# 735 / 675 train / valid / test notes); OUT_DIR/note-cpu is the run. The last line printed is
# the model folder to use (`orchestrion note ... --model OUT_DIR/note-cpu/model`). It stops
# at the first error; run it again with the same OUT_DIR to start over from the data, which
# is kept.
#
# The recorded stages took 25 + 12 + 40 = 77 minutes on two CPU cores, plus the data build.
# The commands are the recorded ones with OUT_DIR's paths and without --quiet. Each stage
# stops at a time limit, as recorded: on another machine it stops at another batch, so the
# rebuilt weights come close to the shipped ones rather than equal them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
take_out_dir "$@"
DATA="$OUT/nsynth22"
RUN="$OUT/note-cpu"
SETTINGS=(--evaluate-notes 0 --set autoencoder_epochs=200 --set sequence_epochs=200
    --set finetune_epochs=200 --set pitch_shift_semitones=0.4)

say "data: building $DATA (resumes an interrupted build)"
"$ORCHESTRION" data nsynth "$DATA" \
    --instruments 'flute,oboe,clarinet,bassoon,saxophone,trumpet,horn,trombone,tuba,violin,viola,cello,double bass,piano,plucked strings,voice,6,11,12,19,21,75' \
    --workers 1

rm -rf "$RUN"
say "autoencoder: starting (25 minutes recorded)"
"$ORCHESTRION" train note --preset cpu --data "$DATA" --out "$RUN" "${SETTINGS[@]}" \
    --stages autoencoder --max-minutes-per-stage 25 --set harmonic_partials=24 \
    --set autoencoder_loss=spectral --set conv_synthesis=false
say "sequence: starting (12 minutes recorded)"
"$ORCHESTRION" train note --data "$DATA" --out "$RUN" "${SETTINGS[@]}" --resume \
    --stages sequence --max-minutes-per-stage 12
# Recorded: the stage ran under --max-minutes-per-stage 45 and was stopped by hand at its
# 40-minute checkpoint (3,743 batches); a last command (--max-minutes-per-stage 30) only
# finalised that checkpoint, running no batch. Here the stage stops at 40 minutes by itself.
say "finetune: starting (40 minutes recorded)"
"$ORCHESTRION" train note --data "$DATA" --out "$RUN" "${SETTINGS[@]}" --resume \
    --stages finetune --max-minutes-per-stage 40

say "done: the rebuilt note-cpu is $RUN/model"
echo "$RUN/model"
