# Shortcuts for ./dev.sh (the README's commands do not need make).
.PHONY: setup ext lint typecheck pytest test run bench wheel
setup ext lint typecheck pytest test run bench wheel:
	./dev.sh $@
