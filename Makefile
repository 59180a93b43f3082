# Everything runs from the venvs that scripts/bootstrap makes (Python 3.12, as in Lambda).
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
export PATH := $(dir $(shell scripts/python312)):$(PATH)
# Bytecode is written (in the venvs and __pycache__/, both ignored by git): with it off, as
# some machines set it, every test process compiled boto3, botocore and moto anew, and moto
# recompiled its S3 url module on each S3 call (10 of the main oracle's 188 s).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test check lint typecheck pytest unit contract integration properties infra template bench stress redrive clean

run:            ## The main job locally: moto + imgix emulator + the real handlers
	@scripts/bootstrap
	.venv/bin/python -m localdev.run_local

test:           ## Every check CI runs: lint, types, tests, template and state machines
	@scripts/bootstrap --tools
	$(MAKE) --no-print-directory lint
	@# Types and the template checks run beside the tests (each target's output is kept
	@# together): the tests spend part of their time waiting on rate limits and timeouts.
	$(MAKE) --no-print-directory -j3 --output-sync=target pytest typecheck template

lint:
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

typecheck:      ## Every handler is a module named app: one mypy run each
	.venv/bin/mypy
	for handler in functions/*/app.py; do .venv/bin/mypy --strict --no-error-summary $$handler || exit 1; done

# Every tier at once, spread over the cores (tests are independent: each has its own moto,
# emulator port and stack); --durations says where the time goes.
pytest:
	.venv/bin/pytest -n 4 --dist load --maxschedchunk 2 --durations=15

unit:           ## Pure tests (no moto, no network): seconds
	.venv/bin/pytest -q tests/unit

contract:       ## The imgix emulator against imgix's documents
	.venv/bin/pytest -q -n auto tests/contract

integration:    ## moto + the emulator + the real handlers
	.venv/bin/pytest -q -n auto --dist worksteal tests/integration

properties:     ## The oracle and concurrency over random operations and deliveries
	.venv/bin/pytest -q -n auto tests/properties

infra:          ## The template, its IAM, the cold start
	.venv/bin/pytest -q -n auto tests/infra

template:
	.venv/bin/statelint statemachine/*.asl.json && echo "statelint: ok"
	.tools/sam/bin/sam validate --lint
	.venv/bin/cfn-lint template.yaml
	.tools/checkov/bin/checkov -f template.yaml --quiet --compact --framework cloudformation --skip-download
	.tools/sam/bin/sam build --build-dir build/sam --cached --parallel >/dev/null && echo "sam build: ok"

stress:         ## The integration tests 5 times with cores + 1 CPU hogs beside them
	@scripts/bootstrap
	scripts/stress

bench:          ## Benchmarks (ratios against baselines measured in the same run)
	@scripts/bootstrap
	.venv/bin/python -m bench

clean:
	rm -rf .venv .tools build .aws-sam
