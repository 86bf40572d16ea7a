#!/bin/sh
# cli_help_docs.sh: every option that a tool's --help prints is documented.
# Runs `--help` of every bin/lora-* tool and of its sub-commands (lora-sweep
# export, lora-bench train), collects each option it names (--long-name and
# single-letter -x), and checks that each one appears in README.md or docs/*.md
# as a whole option (`--seed` does not count for `--seeds`). A missing option
# fails the test, naming the tool and the option. The checker itself is tested
# first on a help text with an option no document has.
set -u
BIN="${BIN_DIR:-bin}"
DOCS="README.md docs/*.md"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "cli_help_docs: FAIL: $*" >&2; exit 1; }

# All documented text, one file; options are matched against it.
cat $DOCS > "$T/docs.txt" 2>/dev/null || fail "cannot read $DOCS"

# options FILE: the options a help text names, one per line, sorted, unique.
# Long options: --name (letters, digits, '-'), cut at '=' or '['. Short ones:
# a '-' and one letter standing alone (not inside a word or a range like 1-16).
options() {
    grep -o -- '--[a-z][a-z0-9-]*' "$1"
    grep -o -E -- '(^|[^A-Za-z0-9-])-[a-zA-Z]([^A-Za-z0-9-]|$)' "$1" | grep -o -E -- '-[a-zA-Z]'
} 2>/dev/null
# undocumented HELP DOCS: the options of help text HELP that text DOCS never names.
undocumented() {
    options "$1" | sort -u | while read -r o; do
        grep -q -E -e "(^|[^A-Za-z0-9-])$o([^A-Za-z0-9-]|$)" "$2" || echo "$o"
    done
}

# The checker must catch an undocumented option, a prefix of a documented one
# included, and must not flag documented ones.
printf 'usage: x [--seed S] [--help] [-o OUT] [-q]\n' > "$T/self.txt"
printf 'Options: `--seeds 1,2`, `--help`, `-o OUT`; -q.\n' > "$T/selfdoc.txt"
miss=$(undocumented "$T/self.txt" "$T/selfdoc.txt")
[ "$miss" = "--seed" ] || fail "self-check: expected only --seed to be missing, got: $miss"

n=0; bad=0
for tool in "$BIN"/lora-*; do
    [ -x "$tool" ] || continue
    name=$(basename "$tool")
    for sub in "" export train; do
        case "$name:$sub" in
            *:) args="--help" ;;
            lora-sweep:export|lora-bench:train) args="$sub --help" ;;
            *) continue ;;
        esac
        # Some tools print usage on stderr; a sub-command's --help may exit 2.
        "$tool" $args > "$T/help.txt" 2>&1
        [ -s "$T/help.txt" ] || fail "$name $args printed nothing"
        grep -q -i usage "$T/help.txt" || fail "$name $args printed no usage line"
        miss=$(undocumented "$T/help.txt" "$T/docs.txt")
        [ -z "$miss" ] || { echo "cli_help_docs: $name $args: options not in README.md or docs/: $(echo $miss)" >&2; bad=1; }
        n=$((n + $(options "$T/help.txt" | sort -u | wc -l)))
    done
done
[ "$bad" = 0 ] || fail "undocumented options (above)"
[ "$n" -gt 50 ] || fail "only $n options found in the tools' help: are the tools in $BIN?"
echo "cli_help_docs: $n tool options, each documented"
