# MuNet on Ray — set-up, demo and tests. Every target installs what it needs on a fresh machine.
#   make demo   generate synthetic data, train on a local Ray (2 workers), evaluate, print the report path
#   make model  rebuild the shipped model (munet/weights) from scratch: data, training, held-out evaluation, export
#   make test   run the test suite (make test-all: with the long end-to-end runs)
#   make image  build the cluster image (cluster/Dockerfile; IMAGE=<registry>/munet, docs/cluster.md)
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
MUNET  := $(VENV)/bin/munet
# Anny builds its model cache here once per machine (about 6 minutes the first time).
export ANNY_CACHE_DIR ?= $(HOME)/.cache/anny
export RAY_USAGE_STATS_ENABLED ?= 0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0

.PHONY: setup system-deps demo model lint test test-all bench image clean

setup: $(VENV)/.installed

# Headless OpenGL (EGL over Mesa llvmpipe) for the CPU renderer.
system-deps:
	@if ! ldconfig -p | grep -q libEGL_mesa; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo ">> installing EGL/Mesa system packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null; \
	  else \
	    echo "!! headless rendering needs: sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml | system-deps
	@command -v $(PYTHON) >/dev/null || { echo "!! $(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --progress-bar off --no-compile -e '.[test]'
	$(MUNET) body prepare
	touch $@

demo: setup
	$(MUNET) demo

# The shipped model (munet/weights/MODEL_CARD.md): the project's own jobs on the synthetic generator.
# About 3 hours on 2 CPU cores; an interrupted `make model` continues where it stopped (the shards
# already written are kept, a finished set is not generated again, training resumes from its newest
# checkpoint, a finished leg trains nothing). Training runs in two legs, as the shipped weights were
# made: 6000 steps, then resumed to 10000 (the cosine schedule restarts at its value for step 6000 of
# 10000).
MODEL_RUN ?= runs/model
MODEL_SETTINGS := --config small --set model.keypoint_heatmaps=true --set model.skeleton_init=true \
	--set train.checkpoint_every=250
MODEL_TRAIN := $(PY) jobs/train.py --data $(MODEL_RUN)/shards/train --out $(MODEL_RUN) --name train --workers 1
model: setup
	test -f $(MODEL_RUN)/shards/train/manifest.json || $(PY) jobs/make_shards.py --out $(MODEL_RUN)/shards/train \
	  --num-samples 6144 --seed 0 --image-size 128 --views 4 --config small
	test -f $(MODEL_RUN)/shards/heldout/manifest.json || $(PY) jobs/make_shards.py --out $(MODEL_RUN)/shards/heldout \
	  --num-samples 128 --seed 1 --image-size 128 --views 1 --config small
	$(MODEL_TRAIN) --steps 6000 $(MODEL_SETTINGS) $(if $(wildcard $(MODEL_RUN)/train/checkpoint_*),--resume)
	$(MODEL_TRAIN) --steps 10000 $(MODEL_SETTINGS) --resume
	$(PY) jobs/evaluate.py --checkpoint $(MODEL_RUN)/train --data $(MODEL_RUN)/shards/heldout \
	  --out $(MODEL_RUN)/heldout
	$(MUNET) export $(MODEL_RUN)/train --out munet/weights

# Style: ruff's linter and formatter (settings in pyproject.toml); `ruff format .` fixes the layout.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# make test: every test but the long end-to-end runs marked `slow` (about 10 minutes on 2 cores);
# make test-all: all of them (the full Tune sweep, `ray job submit`, the DDP ablation: about 30 more).
test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(MUNET) bench body
	$(MUNET) bench metrics
	$(MUNET) bench model
	$(MUNET) bench data

# The cluster image, tagged <package version>-<commit> so that every build has its own tag (the
# cluster YAMLs name the tag; `latest` is refused by munet cluster validate): build from a committed
# tree. Needs Docker >= 23.
IMAGE ?= munet
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)-$(shell git rev-parse --short HEAD)
image:
	docker build -f cluster/Dockerfile -t $(IMAGE):$(IMAGE_TAG) .
	@echo ">> built $(IMAGE):$(IMAGE_TAG): docker push it, then set docker.image in cluster/*.yaml"

clean:
	rm -rf $(VENV) .pytest_cache runs
