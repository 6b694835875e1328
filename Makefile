# Two entry points. Each sets everything up on a fresh machine (scripts/setup.sh) and then runs.
#   make demo   run the default offline guard over a mixed sample of the bundled benchmarks
#   make test   run the test suite (PYTEST_ARGS="-m slow" runs the slow, real-model suite); the LiteLLM
#               guardrail cases run in .venv-litellm, and must (VLMGUARD_REQUIRE_LITELLM)
.PHONY: demo test
SHELL := /bin/bash
PYTEST_ARGS ?=
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

demo:
	@./scripts/setup.sh
	@.venv/bin/vlmguard demo

test:
	@./scripts/setup.sh
	@VLMGUARD_REQUIRE_LITELLM=1 .venv/bin/python -m pytest $(PYTEST_ARGS)
