"""The documentation checks behind scripts/check-docs (see CONTRIBUTING.md).

Reads README.md, CONTRIBUTING.md and docs/*.md and reports every place where the
documentation and the repository disagree: sizes, named files and script options,
links, snippets (YAML, JSON, HCL, shell, TypeScript), the ServiceToken exports and
the parameter and output tables. `--self-test` breaks each rule on purpose (in
memory) and fails unless every break is caught.

Run with the peers' venv (PyYAML, cfn-lint) and python-hcl2 on the path:
scripts/check-docs does both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 15_000  # bytes
DEFAULT_PROVIDER_STACK = "resource-policy-provider"

# Names the documentation may use before the work that delivers them is merged. Each is
# reported as pending, not as an error, while it is missing; once it exists it is checked
# like the rest. Empty now: the release, the alias and the new parameters are merged.
PENDING_PATHS: set[str] = set()
PENDING_PARAMETERS: set[str] = set()
PENDING_OUTPUTS: set[str] = set()
PENDING_EXPORTS: set[str] = set()
# (script, option) pairs the documentation names before the script has them.
PENDING_SCRIPT_OPTIONS: set[tuple[str, str]] = set()

# Top-level entries a backticked name may start with to count as a repository path.
PATH_PREFIXES = ("scripts/", "examples/", "docs/", "tests/", "events/", "src/", ".ci/")
TOP_LEVEL_FILES = {"template.yaml", "Cargo.toml", "Cargo.lock", "samconfig.toml", "README.md",
                   "CONTRIBUTING.md", "CHANGELOG.md", "LICENSE"}
# Commands a shell snippet may run besides the repository's own scripts.
EXTERNAL_COMMANDS = {"aws", "sam", "cargo", "npm", "npx", "node", "python3", "pip", "sha256sum", "cd", "for",
                     "do", "done", "terraform", "rustup", "sed", "git", "export"}
# detail-types an apply request may have (src/eventbridge.rs `handle`); `Plan` is a dry run.
APPLY_DETAIL_TYPES = {"PutResourcePolicy", "DeleteResourcePolicy", "Plan", "Reconcile"}
# The source of the events the function sends (src/repair/check.rs), checked against what it sends.
SENT_SOURCE = "resource-policy-provider"
LOOPBACK_URL = re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/\S*)?")


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the `<!-- check: ... -->` right before the fence, if any


@dataclass
class Doc:
    name: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    prose: list[tuple[int, str]] = field(default_factory=list)  # lines outside code blocks
    headings: list[str] = field(default_factory=list)


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")


# -- reading --------------------------------------------------------------------------


def doc_names(root: Path) -> list[str]:
    names = ["README.md", "CONTRIBUTING.md"]
    names += sorted(str(p.relative_to(root)) for p in (root / "docs").glob("*.md"))
    return [n for n in names if (root / n).is_file()]


def parse_doc(name: str, text: str) -> Doc:
    doc = Doc(name, text)
    lines = text.split("\n")
    fence: tuple[int, str, str | None] | None = None
    body: list[str] = []
    marker = None
    for i, line in enumerate(lines, 1):
        if fence is None:
            m = re.match(r"^```\s*([\w+-]*)\s*$", line)
            if m:
                fence, body = (i, m.group(1).lower(), marker), []
                continue
            mk = re.match(r"^<!--\s*check:\s*(.*?)\s*-->\s*$", line)
            if mk:
                marker = mk.group(1)
                continue
            if line.strip():
                marker = None
            doc.prose.append((i, line))
            h = re.match(r"^(#{1,6})\s+(.*)$", line)
            if h:
                doc.headings.append(h.group(2))
        elif line.strip() == "```":
            doc.blocks.append(Block(name, fence[0], fence[1], "\n".join(body) + "\n", fence[2]))
            fence, marker = None, None
        else:
            body.append(line)
    if fence is not None:
        doc.blocks.append(Block(name, fence[0], fence[1], "\n".join(body), fence[2]))
    return doc


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Doc) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in doc.headings:
        s = slug(h)
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return out


class CfnLoader(yaml.SafeLoader):
    """CloudFormation YAML: short tags become their long forms."""


def _construct(tag: str):
    name = "Ref" if tag == "Ref" else ("Condition" if tag == "Condition" else f"Fn::{tag}")

    def construct(loader: yaml.Loader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in ("Ref", "Condition", "GetAtt", "Sub", "ImportValue", "Join", "Select", "Split", "If", "Not",
             "Equals", "And", "Or", "FindInMap", "Base64", "GetAZs", "Cidr", "Transform"):
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_cfn_yaml(text: str) -> Any:
    return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass


def template_facts(root: Path) -> tuple[dict, set[str]]:
    """template.yaml parsed, and the export names it defines for the default stack name."""
    template = load_cfn_yaml((root / "template.yaml").read_text())
    exports = set()
    for out in (template.get("Outputs") or {}).values():
        name = (out.get("Export") or {}).get("Name")
        if isinstance(name, dict) and "Fn::Sub" in name and isinstance(name["Fn::Sub"], str):
            exports.add(name["Fn::Sub"].replace("${AWS::StackName}", DEFAULT_PROVIDER_STACK))
        elif isinstance(name, str):
            exports.add(name)
    return template, exports


def release_parameters(root: Path) -> set[str]:
    """The parameters scripts/release adds to the release template (the code's location):
    the `"  Name:\\n"` lines of the text it inserts into the Parameters section."""
    source = (root / "scripts" / "release").read_text()
    return set(re.findall(r'"  ([A-Z][A-Za-z0-9]+):\\n"\n', source))


def walk(node: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# -- checks ---------------------------------------------------------------------------


def check_size(docs: dict[str, Doc], report: Report) -> None:
    size = len(docs["README.md"].text.encode())
    if size > README_LIMIT:
        report.error("README.md", f"{size} bytes, over the {README_LIMIT}-byte limit: move detail into docs/")


def _exists(root: Path, path: str) -> bool:
    pattern = re.sub(r"<[^>]*>", "*", path.rstrip("/"))
    if any(c in pattern for c in "*?["):
        return any(root.glob(pattern))
    return (root / pattern).exists()


def _path_or_pending(root: Path, path: str, where: str, report: Report) -> bool:
    clean = path.rstrip("/").rstrip(".,;:")
    if _exists(root, clean):
        return True
    if clean in PENDING_PATHS:
        report.pending.append(f"{where}: {clean} (delivered by work in flight)")
        return True
    report.error(where, f"names {clean}, which does not exist in the repository")
    return False


def _is_repo_path(token: str) -> bool:
    return token.startswith(PATH_PREFIXES) or token in TOP_LEVEL_FILES


def _check_script_options(root: Path, script: str, options: Iterable[str], where: str, report: Report) -> None:
    path = root / script
    if not path.is_file():
        return
    if not os.access(path, os.X_OK):
        report.error(where, f"{script} is not executable")
    source = path.read_text(errors="replace")
    for option in options:
        if option not in source and (script, option) not in PENDING_SCRIPT_OPTIONS:
            report.error(where, f"{script} has no option {option}")


def check_named_paths(root: Path, docs: dict[str, Doc], report: Report) -> None:
    for doc in docs.values():
        for lineno, line in doc.prose:
            for code in re.findall(r"`([^`]+)`", line):
                words = code.replace("[", " ").replace("]", " ").split()
                if not words or not _is_repo_path(words[0]):
                    continue
                where = f"{doc.name}:{lineno}"
                if _path_or_pending(root, words[0], where, report) and words[0].startswith("scripts/"):
                    _check_script_options(root, words[0].rstrip(".,;:"), [w for w in words[1:] if w.startswith("--")],
                                          where, report)
                # `scripts/demo --sam` / `--package`: a lone option continues the command before it.
            for script, option in re.findall(r"`(scripts/[\w-]+)[^`]*`\s*/\s*`(--[\w-]+)`", line):
                _check_script_options(root, script, [option], f"{doc.name}:{lineno}", report)
        for block in doc.blocks:
            if block.lang == "text":
                for offset, line in enumerate(block.text.splitlines(), 1):
                    first = line.split()[0] if line.split() else ""
                    if _is_repo_path(first) or first.endswith("/"):
                        _path_or_pending(root, first, f"{doc.name}:{block.line + offset}", report)


def check_links(root: Path, docs: dict[str, Doc], report: Report) -> None:
    for doc in docs.values():
        base = (root / doc.name).parent
        for lineno, line in doc.prose:
            where = f"{doc.name}:{lineno}"
            targets = re.findall(r"\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)", line)
            targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
            targets += re.findall(r"<(\w+:[^>\s]+)>", line)
            targets += re.findall(r"href=\"([^\"]+)\"", line)
            for target in targets:
                if re.match(r"^[a-zA-Z][\w+.-]*:", target):
                    report.error(where, f"link to {target} points outside the repository")
                    continue
                path_part, _, anchor = target.partition("#")
                resolved = (base / path_part).resolve() if path_part else (root / doc.name).resolve()
                try:
                    rel = resolved.relative_to(root.resolve())
                except ValueError:
                    report.error(where, f"link {target} leaves the repository")
                    continue
                if not resolved.exists():
                    if str(rel) in PENDING_PATHS:
                        report.pending.append(f"{where}: link to {rel} (delivered by work in flight)")
                    else:
                        report.error(where, f"link {target}: {rel} does not exist")
                    continue
                if anchor and resolved.suffix == ".md":
                    target_doc = docs.get(str(rel)) or parse_doc(str(rel), resolved.read_text())
                    if anchor not in anchors(target_doc):
                        report.error(where, f"link {target}: no heading in {rel} makes the anchor #{anchor}")
            stripped = re.sub(r"`[^`]*`", "", line)
            for url in re.findall(r"\b(?:https?|ftp)://[^\s)>\]]+", stripped):
                if not LOOPBACK_URL.match(url):
                    report.error(where, f"web address {url}: nothing may point outside the repository")
        for block in doc.blocks:
            for url in re.findall(r"\bhttps?://[^\s\"')]+", block.text):
                if not LOOPBACK_URL.match(url):
                    report.error(f"{doc.name}:{block.line}", f"web address {url} in a snippet")


def check_no_outside_references(docs: dict[str, Doc], report: Report) -> None:
    for doc in docs.values():
        for lineno, line in enumerate(doc.text.split("\n"), 1):
            where = f"{doc.name}:{lineno}"
            if re.search(r"\b[Ii]ssues?\s+#?\d+\b|(?<![\w/&#])#\d+\b", line):
                report.error(where, "mentions an internal issue number")
            if re.search(r"\.\./shared\b|\bSPEC\.md\b|\baws-facts\b", line):
                report.error(where, "refers to a file outside the repository")


def check_export_names(exports: set[str], docs: dict[str, Doc], report: Report, extra_files: dict[str, str]) -> None:
    """Every `<name>-ServiceToken` / `<name>-LiveServiceToken` written out in the docs
    (and the CDK example) is an export template.yaml defines for the default stack name."""
    texts = {d.name: d.text for d in docs.values()} | extra_files
    for name, text in texts.items():
        for lineno, line in enumerate(text.split("\n"), 1):
            for token in re.findall(r"(?<![\w${}<>-])([A-Za-z0-9][A-Za-z0-9-]*-(?:Live)?ServiceToken)\b", line):
                if token.startswith("StackSet-"):
                    continue
                if token in exports:
                    continue
                if token in PENDING_EXPORTS:
                    report.pending.append(f"{name}:{lineno}: export {token} (delivered by work in flight)")
                    continue
                report.error(f"{name}:{lineno}", f"export {token} is not one template.yaml defines "
                             f"(it exports {sorted(exports)} for the stack name {DEFAULT_PROVIDER_STACK})")


def _known_props() -> set[str]:
    """The request properties the function accepts: the `KNOWN` list of src/request.rs
    (anything else is refused there), so a property is documented once the parser has it."""
    source = (ROOT / "src" / "model" / "request.rs").read_text()
    block = re.search(r"const KNOWN: \[&str; \d+\] = \[(.*?)\];", source, re.S)
    if block is None:
        raise SystemExit("src/request.rs: no `const KNOWN` list of request properties")
    return set(re.findall(r'"(\w+)"', block.group(1)))


def _sent_events() -> dict[str, set[str]]:
    """The events the function sends (source `resource-policy-provider`): each
    detail-type in src/ (`.detail_type("...")`) with the detail keys its `json!` builds.
    Only `ResourcePolicyDrift` (src/repair/check.rs `report`) carries a detail a reader acts on."""
    source = (ROOT / "src" / "repair" / "check.rs").read_text()
    body = source[source.index("async fn report("):]
    body = body[:body.index("PutEventsRequestEntry")]
    keys = set(re.findall(r'"(\w+)":', body))
    types = set(re.findall(r'\.detail_type\("(\w+)"\)', source))
    return {kind: keys for kind in types}


def check_snippets(root: Path, docs: dict[str, Doc], exports: set[str], report: Report, lint: bool = True) -> None:
    templates: list[tuple[str, str]] = []  # (where, text)
    known_props = _known_props()
    hcl2 = _import_hcl2(report)
    cdk_lines = _cdk_source_lines(root)
    for doc in docs.values():
        for block in doc.blocks:
            where = f"{doc.name}:{block.line}"
            if block.marker and block.marker.split()[0] == "deploy" and block.lang != "yaml":
                report.error(where, "a `check: deploy` marker must precede a YAML template")
            if block.lang in ("yaml", "yml"):
                try:
                    parsed = load_cfn_yaml(block.text)
                except yaml.YAMLError as exc:
                    report.error(where, f"YAML snippet does not parse: {exc}".replace("\n", " "))
                    continue
                if isinstance(parsed, dict) and "Resources" in parsed:
                    templates.append((where, block.text))
                elif block.marker and block.marker.startswith("deploy"):
                    report.error(where, "a `check: deploy` snippet must be a whole template (with Resources)")
            elif block.lang == "json":
                try:
                    parsed = json.loads(block.text)
                except json.JSONDecodeError as exc:
                    report.error(where, f"JSON snippet does not parse: {exc}")
                    continue
                if isinstance(parsed, dict) and "Resources" in parsed:
                    templates.append((where, block.text))
                if isinstance(parsed, dict) and parsed.get("source") == SENT_SOURCE:
                    kind = parsed.get("detail-type")
                    sent = _sent_events()
                    if kind not in sent:
                        report.error(where, f"the function sends no {kind!r} event (it sends {sorted(sent)})")
                    else:
                        unknown = set(parsed.get("detail") or {}) - sent[kind]
                        if unknown:
                            report.error(where, f"{kind} detail keys the function does not send: {sorted(unknown)}")
                elif isinstance(parsed, dict) and "detail-type" in parsed:
                    kind = parsed["detail-type"]
                    if kind not in APPLY_DETAIL_TYPES:
                        report.error(where, f"detail-type {kind!r} is not one the function accepts")
                    unknown = set(parsed.get("detail") or {}) - known_props
                    if unknown:
                        report.error(where, f"unknown properties in detail: {sorted(unknown)}")
            elif block.lang == "hcl" and hcl2 is not None:
                try:
                    hcl2.loads(block.text)
                except Exception as exc:  # noqa: BLE001 - the parser raises several types
                    report.error(where, f"HCL snippet does not parse: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}")
            elif block.lang in ("sh", "bash", "shell"):
                check_shell(root, block, where, report)
            elif block.lang in ("ts", "typescript"):
                for offset, line in enumerate(block.text.splitlines(), 1):
                    if line.strip() and line.strip() not in cdk_lines:
                        report.error(f"{doc.name}:{block.line + offset}",
                                     f"TypeScript line not in examples/cdk: {line.strip()!r}")
            for key, value in _walk_parsed(block):
                if key == "Fn::ImportValue" and isinstance(value, str) and value.endswith("ServiceToken") \
                        and value not in exports | PENDING_EXPORTS:
                    report.error(where, f"!ImportValue {value}: template.yaml exports {sorted(exports)}")
    if lint and templates:
        run_cfn_lint(templates, report)


def _walk_parsed(block: Block) -> Iterable[tuple[str, Any]]:
    try:
        if block.lang in ("yaml", "yml"):
            return list(walk(load_cfn_yaml(block.text)))
        if block.lang == "json":
            return list(walk(json.loads(block.text)))
    except Exception:  # noqa: BLE001 - reported by the parse checks
        pass
    return []


def check_shell(root: Path, block: Block, where: str, report: Report) -> None:
    done = subprocess.run(["bash", "-n"], input=block.text, text=True, capture_output=True)
    if done.returncode != 0:
        report.error(where, f"shell snippet: bash -n says {done.stderr.strip()}")
    text = re.sub(r"\\\n", " ", block.text)
    for offset, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for command in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            words = command.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]  # VAR=value before the command
            if not words:
                continue
            first = words[0]
            if first.startswith("scripts/") or _is_repo_path(first):
                if _path_or_pending(root, first, where, report):
                    _check_script_options(root, first, [w for w in words[1:] if w.startswith("--")], where, report)
            elif first not in EXTERNAL_COMMANDS:
                report.error(where, f"shell snippet runs {first!r}, neither a repository script nor a known tool")


def _cdk_source_lines(root: Path) -> set[str]:
    lines = set()
    for path in (root / "examples" / "cdk").glob("*/*.ts"):
        if "node_modules" in path.parts:
            continue
        lines |= {line.strip() for line in path.read_text().splitlines()}
    return lines


def _import_hcl2(report: Report):
    try:
        import hcl2  # noqa: PLC0415 - optional until scripts/check-docs installs it
    except ImportError:
        report.error("check-docs", "python-hcl2 is missing: run scripts/check-docs (it installs "
                     "tests/docs/requirements.txt into .venv-docs)")
        return None
    return hcl2


def run_cfn_lint(templates: list[tuple[str, str]], report: Report) -> None:
    cfn_lint = ROOT / ".venv" / "bin" / "cfn-lint"
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        files = {}
        for where, text in templates:
            name = re.sub(r"[^\w.-]", "_", where) + ".yaml"
            (Path(tmp) / name).write_text(text)
            files[name] = where
        done = subprocess.run([str(cfn_lint), "--", *sorted(files)], cwd=tmp, text=True, capture_output=True)
        if done.returncode != 0:
            for line in (done.stdout + done.stderr).splitlines():
                for name, where in files.items():
                    line = line.replace(name, where)
                if line.strip():
                    report.errors.append(f"cfn-lint: {line}")
            if not any(e.startswith("cfn-lint:") for e in report.errors):
                report.errors.append(f"cfn-lint failed with status {done.returncode}")


def _table_rows(doc: Doc, marker: str) -> list[list[str]]:
    """Rows of the table that follows `<!-- check: marker -->`."""
    lines = doc.text.split("\n")
    for i, line in enumerate(lines):
        if re.match(rf"^<!--\s*check:\s*{marker}\s*-->", line):
            rows = []
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    if rows:
                        break
                    continue
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                if set(cells[0]) <= {"-", " "} or cells[0] in ("Parameter", "Output", "Property"):
                    continue
                rows.append(cells)
            return rows
    return []


def check_configuration_tables(template: dict, docs: dict[str, Doc], report: Report) -> None:
    doc = docs.get("docs/configuration.md")
    if doc is None:
        report.error("docs/configuration.md", "missing: the one place that lists parameters and outputs")
        return
    params = template.get("Parameters") or {}
    rows = _table_rows(doc, "parameters")
    if not rows:
        report.error(doc.name, "no `check: parameters` table")
    documented = {}
    for cells in rows:
        for name in re.findall(r"`(\w+)`", cells[0]):
            documented[name] = cells[1] if len(cells) > 1 else ""
    for name, default_text in documented.items():
        if name not in params:
            if name in PENDING_PARAMETERS:
                report.pending.append(f"{doc.name}: parameter {name} (delivered by work in flight)")
            else:
                report.error(doc.name, f"parameter {name} is not in template.yaml")
            continue
        default = params[name].get("Default")
        shown = re.findall(r"`([^`]*)`", default_text) or [default_text.split(" ")[0]]
        if default in ("", None):
            if not default_text.startswith(("empty", "none")):
                report.error(doc.name, f"parameter {name}: template default is empty, docs say {default_text!r}")
        elif str(default) != shown[0]:
            report.error(doc.name, f"parameter {name}: template default is {default!r}, docs say {default_text!r}")
    for name in params:
        if name not in documented:
            report.error(doc.name, f"template.yaml parameter {name} is not in the parameters table")

    release = release_parameters(ROOT)
    rows = _table_rows(doc, "release-parameters")
    if not rows:
        report.error(doc.name, "no `check: release-parameters` table")
    shown_release = {name for cells in rows for name in re.findall(r"`(\w+)`", cells[0])}
    for name in sorted(shown_release - release):
        report.error(doc.name, f"release parameter {name} is not one scripts/release adds")
    for name in sorted(release - shown_release):
        report.error(doc.name, f"scripts/release adds the parameter {name}, missing from the release table")

    outputs = template.get("Outputs") or {}
    rows = _table_rows(doc, "outputs")
    if not rows:
        report.error(doc.name, "no `check: outputs` table")
    seen = set()
    for cells in rows:
        names = re.findall(r"`(\w+)`", cells[0])
        if not names:
            continue
        name = names[0]
        seen.add(name)
        if name not in outputs:
            if name in PENDING_OUTPUTS:
                report.pending.append(f"{doc.name}: output {name} (delivered by work in flight)")
            else:
                report.error(doc.name, f"output {name} is not in template.yaml")
            continue
        export = (outputs[name].get("Export") or {}).get("Name")
        want = export["Fn::Sub"].replace("${AWS::StackName}", "<stack name>") if isinstance(export, dict) else None
        shown = re.findall(r"`([^`]*)`", cells[1]) if len(cells) > 1 else []
        if (shown[0] if shown else None) != want:
            report.error(doc.name, f"output {name}: template exports {want!r}, docs say {cells[1]!r}")
    for name in outputs:
        if name not in seen:
            report.error(doc.name, f"template.yaml output {name} is not in the outputs table")


def check_properties_table(docs: dict[str, Doc], report: Report) -> None:
    """README's property table lists exactly the request properties the product has
    (scripts/check-events' list, which mirrors the request parser)."""
    doc = docs["README.md"]
    rows = _table_rows(doc, "properties")
    if not rows:
        report.error("README.md", "no `check: properties` table")
        return
    documented = {name for cells in rows for name in re.findall(r"`(\w+)`", cells[0])}
    known = _known_props()
    for name in sorted(known - documented):
        report.error("README.md", f"property {name} is missing from the properties table")
    for name in sorted(documented - known):
        report.error("README.md", f"property {name} is not one the function accepts")


def check_environment_table(root: Path, docs: dict[str, Doc], report: Report) -> None:
    doc = docs.get("docs/configuration.md")
    if doc is None:
        return
    source = "\n".join(p.read_text() for p in (root / "src").rglob("*.rs"))
    for lineno, line in doc.prose:
        if not line.startswith("| `") or "|" not in line[1:]:
            continue
        first = line.split("|")[1]
        for var in re.findall(r"`([A-Z][A-Z0-9_]+)`", first):
            if var.startswith(("AWS_", "SSL_", "RUST_")) or var.endswith("_<SERVICE>"):
                continue
            if var.isupper() and "_" in var and var not in source:
                report.error(f"{doc.name}:{lineno}", f"environment variable {var} is read nowhere in src/")


def run_checks(root: Path, docs: dict[str, Doc], lint: bool = True) -> Report:
    report = Report()
    template, exports = template_facts(root)
    cdk_files = {str(p.relative_to(root)): p.read_text()
                 for p in (root / "examples" / "cdk").glob("*/*.ts") if "node_modules" not in p.parts}
    check_size(docs, report)
    check_named_paths(root, docs, report)
    check_links(root, docs, report)
    check_no_outside_references(docs, report)
    check_export_names(exports, docs, report, cdk_files)
    check_snippets(root, docs, exports, report, lint=lint)
    check_configuration_tables(template, docs, report)
    check_environment_table(root, docs, report)
    check_properties_table(docs, report)
    return report


def load_docs(root: Path) -> dict[str, Doc]:
    return {name: parse_doc(name, (root / name).read_text()) for name in doc_names(root)}


# -- self-test --------------------------------------------------------------------------

# (what is broken, the doc, a text transformation, a piece of the error it must cause)
BREAKS: list[tuple[str, str, Callable[[str], str], str]] = [
    ("README over the limit", "README.md", lambda t: t + "\n" + "x" * README_LIMIT, "over the"),
    ("a missing file", "README.md", lambda t: t + "\nSee `examples/nothing-here.yaml`.\n", "examples/nothing-here.yaml"),
    ("a missing script option", "CONTRIBUTING.md", lambda t: t + "\nRun `scripts/demo --no-such-flag`.\n",
     "no option --no-such-flag"),
    ("a broken relative link", "README.md", lambda t: t + "\n[x](docs/nothing.md)\n", "docs/nothing.md does not exist"),
    ("a broken anchor", "README.md", lambda t: t + "\n[x](docs/deploy.md#no-such-heading)\n", "anchor #no-such-heading"),
    ("a link outside the repository", "docs/deploy.md", lambda t: t + "\n[x](../../elsewhere.md)\n",
     "leaves the repository"),
    ("a web link", "README.md", lambda t: t + "\n[x](https://example.com/)\n", "points outside"),
    ("a bare web address", "docs/cdk.md", lambda t: t + "\nSee https://example.com/page.\n", "web address"),
    ("an issue number", "docs/deploy.md", lambda t: t + "\nAs issue 15 asks.\n", "issue number"),
    ("a contract outside the repository", "README.md", lambda t: t + "\nContract: `../shared/SPEC.md`.\n",
     "outside the repository"),
    ("the wrong ServiceToken export", "README.md",
     lambda t: t.replace("!ImportValue resource-policy-provider-LiveServiceToken",
                         "!ImportValue provider-LiveServiceToken", 1),
     "provider-LiveServiceToken"),
    ("YAML that does not parse", "docs/shared-policies.md", lambda t: t + "\n```yaml\na: [b\n```\n", "does not parse"),
    ("a template cfn-lint refuses", "docs/shared-policies.md",
     lambda t: t + "\n```yaml\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: { NoSuch: 1 }\n```\n",
     "cfn-lint"),
    ("JSON that does not parse", "docs/terraform.md", lambda t: t + "\n```json\n{\"a\": }\n```\n", "does not parse"),
    ("an unknown apply property", "docs/terraform.md",
     lambda t: t + "\n```json\n{\"detail-type\": \"PutResourcePolicy\", \"detail\": {\"Polcy\": {}}}\n```\n",
     "unknown properties"),
    ("HCL that does not parse", "docs/terraform.md", lambda t: t + "\n```hcl\nresource \"a\" \"b\" {\n  x = \n```\n",
     "HCL snippet"),
    ("a shell syntax error", "docs/deploy.md", lambda t: t + "\n```sh\nif then fi (\n```\n", "bash -n"),
    ("an unknown shell command", "docs/deploy.md", lambda t: t + "\n```sh\nscripts/no-such-script --x\n```\n",
     "scripts/no-such-script"),
    ("TypeScript not in the example", "docs/cdk.md", lambda t: t + "\n```ts\nconst notInTheApp = 1;\n```\n",
     "not in examples/cdk"),
    ("a parameter the template lacks", "docs/configuration.md",
     lambda t: t.replace("| `LogLevel` |", "| `LogLevl` |", 1), "LogLevel is not in the parameters table"),
    ("a wrong default", "docs/configuration.md",
     lambda t: t.replace("| `LogRetentionDays` | 30 |", "| `LogRetentionDays` | 14 |", 1), "LogRetentionDays"),
    ("a wrong export", "docs/configuration.md",
     lambda t: t.replace("| `ApplyEventBusName` | `<stack name>-ApplyEventBus` |",
                         "| `ApplyEventBusName` | `<stack name>-ApplyBus` |", 1), "ApplyEventBusName"),
    ("a release parameter scripts/release does not add", "docs/configuration.md",
     lambda t: t.replace("| `CodeBucketRegionSuffix` |", "| `CodeBucketSuffix` |", 1), "CodeBucketSuffix"),
    ("an environment variable the code does not read", "docs/configuration.md",
     lambda t: t.replace("| `RECONCILE_CONCURRENCY` |", "| `RECONCILE_PARALLELISM` |", 1), "RECONCILE_PARALLELISM"),
    ("a property the function does not accept", "README.md",
     lambda t: t.replace("| `Service` | optional:", "| `Servce` | optional:", 1), "Servce"),
    ("a drift event key the function does not send", "docs/guardrails.md",
     lambda t: t.replace('"Planned":', '"Plan":', 1), "['Plan']"),
    ("a detail-type the function does not accept", "docs/guardrails.md",
     lambda t: t.replace('"detail-type": "Plan"', '"detail-type": "DryRun"', 1), "'DryRun' is not one"),
    ("a guard property the function does not accept", "docs/guardrails.md",
     lambda t: t.replace('"TakeOver": true', '"Takeover": true', 1), "Takeover"),
    ("a layout entry that does not exist", "CONTRIBUTING.md",
     lambda t: t.replace("src/repair/check.rs", "src/repair/checks.rs", 1), "src/repair/checks.rs"),
]


def self_test(root: Path) -> int:
    clean = run_checks(root, load_docs(root))
    if clean.errors:
        print("check-docs --self-test: the documentation must pass before the self-test:", *clean.errors, sep="\n  ")
        return 1
    failed = 0
    for what, name, transform, expected in BREAKS:
        docs = load_docs(root)
        before = docs[name].text
        after = transform(before)
        if after == before:
            print(f"  NOT APPLIED  {what}: the transformation changed nothing in {name}")
            failed += 1
            continue
        docs[name] = parse_doc(name, after)
        report = run_checks(root, docs, lint="cfn-lint" in expected)
        hits = [e for e in report.errors if expected in e]
        print(f"  {'caught' if hits else 'MISSED':>6}  {what}: {hits[0] if hits else report.errors[:3]}")
        failed += not hits
    print(f"check-docs --self-test: {len(BREAKS) - failed}/{len(BREAKS)} breaks caught")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self-test", action="store_true", help="break each rule on purpose; fail unless caught")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test(ROOT)
    docs = load_docs(ROOT)
    report = run_checks(ROOT, docs)
    for line in report.pending:
        print(f"pending: {line}")
    for line in report.errors:
        print(f"check-docs: {line}")
    blocks = sum(len(d.blocks) for d in docs.values())
    size = len(docs["README.md"].text.encode())
    if report.errors:
        print(f"check-docs: {len(report.errors)} problems in {len(docs)} files")
        return 1
    print(f"check-docs: OK: {len(docs)} files, {blocks} snippets, README.md {size} bytes "
          f"(limit {README_LIMIT}), {len(report.pending)} names pending")
    return 0


if __name__ == "__main__":
    sys.exit(main())
