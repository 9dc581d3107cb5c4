#!/bin/sh
# Ban unbounded or error-hiding C string functions (see STYLE.md, habit 7).
set -eu
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|strncpy|strncat)[[:space:]]*\('
if grep -rnE "$banned" src tests/unit tests/fuzz --include='*.c' --include='*.h'; then
	echo "lint: banned function used (see scripts/lint.sh)" >&2
	exit 1
fi
echo "lint: ok"
