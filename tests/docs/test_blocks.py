"""How ``tests/docs/blocks.py`` reads a page: which block is which, where it is, what it skips.
Pure: the pages here are strings."""

from __future__ import annotations

import tomllib

import pytest

from tests.docs import blocks as md

PAGE = """# A page

Some prose.

```python
# file: myapp/tasks.py
def f() -> int:
    return 1
```

```python
print("hello")
```

<!-- not run: needs systemd -->

```console
$ systemctl start asynctask
```

````markdown
```python
not a block of its own
```
````

- a list item:

  ```console
  $ asynctask ping
  pong
  $ asynctask status nope   # exits 2
  $ echo one \\
      two
  ```

```
no language
```
"""


def test_blocks_are_found_in_order_with_their_lines() -> None:
    found = md.blocks(PAGE)
    assert [(b.lang, b.line) for b in found] == [
        ("python", 6),
        ("python", 12),
        ("console", 18),
        ("markdown", 22),
        ("console", 30),
        ("", 38),
    ]
    assert found[0].file == "myapp/tasks.py"
    assert found[0].text.startswith("# file: myapp/tasks.py\ndef f()")
    assert found[1].file is None
    assert found[1].fence_line == 11


def test_a_not_run_marker_skips_only_the_next_block() -> None:
    found = md.blocks(PAGE)
    assert [b.skip for b in found] == [None, None, "needs systemd", None, None, None]


def test_a_not_run_marker_needs_a_reason() -> None:
    with pytest.raises(md.DocsError, match="needs a reason"):
        md.blocks("<!-- not run: -->\n```python\nx = 1\n```\n")


def test_an_unclosed_fence_is_an_error() -> None:
    with pytest.raises(md.DocsError, match="line 2"):
        md.blocks("text\n```python\nx = 1\n")


def test_a_longer_fence_holds_shorter_ones() -> None:
    (outer,) = [b for b in md.blocks(PAGE) if b.lang == "markdown"]
    assert "```python" in outer.text


def test_console_commands_with_lines_exit_codes_and_continuations() -> None:
    block = md.blocks(PAGE)[4]
    assert block.text.startswith("$ asynctask ping\n")  # the list's indentation is removed
    assert md.commands(block) == [
        md.Command(30, "asynctask ping", 0),
        md.Command(32, "asynctask status nope   # exits 2", 2),
        md.Command(33, "echo one \n    two", 0),
    ]


CONFIG = """
[daemon]
# A comment that says x = y in prose is not a key: it does not start with one.
durability = "full"
# drain = "30s"

[workers]
#   network = false     a flag shown in a comment
[workers.env]
# NAME = "value"

# [auth.users]
# nobody = ["acme"]

# [tenants."*"]
# weight = 1
# [tenants.acme]
# user = "acme-tasks"

# [functions."myapp.tasks:resize"]
# queue = "exclusive"
"""


def test_documented_keys_include_commented_examples() -> None:
    assert md.documented_keys(CONFIG) == {
        ("daemon", "durability"),
        ("daemon", "drain"),
        ("workers", "network"),
        ("workers", "env"),
        ("auth", "users"),
        ("tenants.*", "weight"),
        ("tenants.*", "user"),
        ("functions.*", "queue"),
    }


def test_undocumented_keys_of_a_config_block() -> None:
    documented = md.documented_keys(CONFIG)
    good = tomllib.loads('[daemon]\ndrain = "5s"\n[tenants.a]\nweight = 2\n[workers.env]\nX = "1"')
    assert md.undocumented(good, documented) == []
    bad = tomllib.loads('[daemon]\ndrian = "5s"\n[tenants.a]\nwieght = 2\n[nope]\nx = 1')
    assert md.undocumented(bad, documented) == [
        "[daemon] drian",
        "[nope] x",
        "[tenants.*] wieght",
    ]
    assert md.undocumented(tomllib.loads('[project]\nname = "x"'), documented) == []


def test_reference_keys_are_read_under_their_heading() -> None:
    page = """## Configuration reference

### `[daemon]`

| key | default | what |
|---|---|---|
| `durability` | `"full"` | fsync |

### `[workers.env]`

| `NAME` | | an example of the user's own name |

### `[tenants.<name>]` and `[tenants."*"]`

| `weight` | 1 | share |

## Something else

| `not_a_key` | | |
"""
    assert md.reference_keys(page, "Configuration reference") == {
        ("daemon", "durability"),
        ("workers", "env"),
        ("tenants.*", "weight"),
    }


def test_own_daemon_only_as_a_line_of_its_own() -> None:
    assert md.starts_own_daemon(f"# Page\n\n{md.OWN_DAEMON}\n\ntext\n")
    assert not md.starts_own_daemon(f"- a list item that mentions `{md.OWN_DAEMON}`\n")


def test_reference_defaults_are_compared_with_the_file() -> None:
    page = """## Configuration reference

### `[daemon]`

| key | default | what |
|---|---|---|
| `drain` | `"30s"` | |
| `max_frame` | 16M | not a literal |
| `durability` | `"normal"` | differs |
| `memory` | unset | the file only shows it in a comment |
"""
    rows = md.reference_rows(page, "Configuration reference")
    config = tomllib.loads('[daemon]\ndrain = "30s"\nmax_frame = "16M"\ndurability = "full"\n')
    assert md.default_mismatches(rows, config) == [
        "[daemon] durability: the reference says '`\"normal\"`', the file 'full'",
        "[daemon] max_frame: the reference says '16M', the file '16M'",
    ]


def test_links_of_the_prose_only_and_their_anchors() -> None:
    page = """# Title

See [the concepts](concepts.md#at-least-once-so-make-tasks-idempotent) and
[the web](https://example.com) and [here](#a-heading-with-code).

```python
x = [1](2)  # not a link: code
```

## A heading with `code`, and more!
"""
    assert md.links(page) == [
        (3, "concepts.md#at-least-once-so-make-tasks-idempotent"),
        (4, "#a-heading-with-code"),
    ]
    assert md.anchors(page) == {"title", "a-heading-with-code-and-more"}
