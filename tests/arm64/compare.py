"""Compare the arm64 roots' outputs with x86's (arm64 stage; standard library only).

    python3 tests/arm64/compare.py table RUN_DIR SUITE...    the comparison table (exit 1 on a mismatch)
    python3 tests/arm64/compare.py doctor DOCTOR_JSON LGPIO_TXT

``table`` reads RUN_DIR/x86 and RUN_DIR/<suite> as written by tests/arm64/run.sh and checks:

* the raw outputs of every model on the same input tensor: integer (int8/uint8) outputs identical,
  float outputs within ``FLOAT_ATOL + FLOAT_RTOL * |x86|``; an input that decodes differently
  (a JPEG through another OpenCV/libjpeg) is reported as such, not counted as a model difference;
* ``smartshelf analyze``: the same faces, genders and age brackets; boxes, scores, p_female and
  ages within ``ANALYZE_TOL``;
* ``smartshelf demo --json --fast``: the same decisions (visit, segment, reason, items, slots) in
  the same order, confidences within ``CONFIDENCE_TOL``.

``doctor`` checks a root's ``smartshelf doctor --json``: only camera and GPIO may fail, and only
because python3-picamera2 / python3-lgpio are the stage's stand-ins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLOAT_ATOL = 1e-4
FLOAT_RTOL = 1e-4
ANALYZE_TOL = {"box": 2.0, "score": 0.01, "p_female": 0.01, "age": 0.5}
CONFIDENCE_TOL = 0.01
#: doctor checks that may fail or warn in an emulated root, and why.
ROOT_ONLY = {
    "time_sync": "no NTP client runs in a chroot",
    "admin_port": "the services are not started in a chroot",
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def compare_models(ref: dict, got: dict) -> list[tuple[str, str, bool]]:
    """(model, summary, ok) per model."""
    rows = []
    for name, ref_model in sorted(ref["models"].items()):
        got_model = got["models"].get(name)
        if got_model is None:
            rows.append((name, "missing", False))
            continue
        same_in = exact = total = decoded_differently = 0
        worst = 0.0
        ok = True
        for ref_case, got_case in zip(ref_model["cases"], got_model["cases"], strict=True):
            total += 1
            if ref_case["input_sha256"] != got_case["input_sha256"]:
                decoded_differently += 1
                continue
            same_in += 1
            case_exact = True
            for r, g in zip(ref_case["outputs"], got_case["outputs"], strict=True):
                integer = not r["dtype"].startswith("float")
                diffs = [abs(a - b) for a, b in zip(r["values"], g["values"], strict=True)]
                worst = max([worst, *diffs])
                if integer:
                    case_exact &= not any(diffs)
                    ok &= not any(diffs)
                else:
                    case_exact &= not any(diffs)
                    ok &= all(
                        d <= FLOAT_ATOL + FLOAT_RTOL * abs(a) for d, a in zip(diffs, r["values"], strict=True)
                    )
            exact += case_exact
        kind = ref_model["input_dtype"]
        text = f"{exact}/{same_in} bit-identical, max abs diff {worst:.3g}"
        if decoded_differently:
            text += f"; {decoded_differently} JPEG input(s) decoded differently"
        rows.append((f"{name} ({kind} in)", text, ok and same_in > 0))
    return rows


def compare_analyze(ref: list[dict], got: list[dict]) -> tuple[str, bool]:
    if len(ref) != len(got):
        return f"{len(got)} images vs {len(ref)}", False
    worst = dict.fromkeys(ANALYZE_TOL, 0.0)
    faces = 0
    for r, g in zip(ref, got, strict=True):
        if len(r["faces"]) != len(g["faces"]):
            return f"{Path(g['image']).name}: {len(g['faces'])} faces vs {len(r['faces'])}", False
        for rf, gf in zip(r["faces"], g["faces"], strict=True):
            faces += 1
            if (rf["gender"], rf["age_bracket"]) != (gf["gender"], gf["age_bracket"]):
                return (
                    f"{Path(g['image']).name}: {gf['gender']}/{gf['age_bracket']} vs {rf['gender']}/{rf['age_bracket']}",
                    False,
                )
            worst["box"] = max(worst["box"], *(abs(a - b) for a, b in zip(rf["box"], gf["box"], strict=True)))
            for key in ("score", "p_female", "age"):
                worst[key] = max(worst[key], abs(rf[key] - gf[key]))
    ok = all(worst[k] <= ANALYZE_TOL[k] for k in ANALYZE_TOL)
    diffs = ", ".join(f"{k} {worst[k]:.3g}" for k in ANALYZE_TOL)
    return f"{len(got)} images, {faces} faces, same gender/bracket; max diff: {diffs}", ok


def compare_demo(ref: list[dict], got: list[dict]) -> tuple[str, bool]:
    keys = ("visit", "segment", "reason", "items", "slots")
    if [[d[k] for k in keys] for d in ref] != [[d[k] for k in keys] for d in got]:
        return f"decisions differ ({len(got)} vs {len(ref)})", False
    worst = max((abs(r["confidence"] - g["confidence"]) for r, g in zip(ref, got, strict=True)), default=0.0)
    return f"{len(got)} decisions identical; confidence max diff {worst:.3g}", worst <= CONFIDENCE_TOL


def pytest_summary(path: Path) -> tuple[str, bool] | None:
    if not path.is_file():
        return None
    lines = [line.strip("= ") for line in path.read_text().splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if " passed" in line or " failed" in line), "no summary")
    return summary, " failed" not in summary and " error" not in summary and " passed" in summary


def versions(path: Path) -> str:
    return path.read_text().strip() if path.is_file() else "?"


def table(run_dir: Path, suites: list[str]) -> int:
    x86 = run_dir / "x86"
    ref_models = json.loads((x86 / "model_outputs.json").read_text())
    ref_analyze = read_jsonl(x86 / "analyze.jsonl")
    ref_demo = read_jsonl(x86 / "demo.jsonl")
    columns = ["x86 (reference)", *suites]
    rows: list[list[str]] = [
        [
            "platform",
            versions(x86 / "versions.txt"),
            *(versions(run_dir / s / "versions.txt") for s in suites),
        ]
    ]
    failed = []
    per_suite: dict[str, dict[str, tuple[str, bool]]] = {}
    for suite in suites:
        d = run_dir / suite
        results: dict[str, tuple[str, bool]] = {}
        for model, text, ok in compare_models(ref_models, json.loads((d / "model_outputs.json").read_text())):
            results[f"raw outputs: {model}"] = (text, ok)
        results["smartshelf analyze"] = compare_analyze(ref_analyze, read_jsonl(d / "analyze.jsonl"))
        results["smartshelf demo --json --fast"] = compare_demo(ref_demo, read_jsonl(d / "demo.jsonl"))
        summary = pytest_summary(d / "pytest.txt")
        if summary is not None:
            results["pytest -m unit (core, device, models)"] = summary
        per_suite[suite] = results
    names = list(dict.fromkeys(name for results in per_suite.values() for name in results))
    for name in names:
        row = [name, "reference"]
        for suite in suites:
            text, ok = per_suite[suite].get(name, ("not run", True))
            row.append(("OK: " if ok else "MISMATCH: ") + text)
            if not ok:
                failed.append(f"{suite}: {name}")
        rows.append(row)
    out = ["| check | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    out.append("")
    out.append(
        f"Tolerances: integer model outputs identical; float outputs |diff| <= {FLOAT_ATOL:g} + {FLOAT_RTOL:g}*|x86|; "
        f"analyze box {ANALYZE_TOL['box']:g} px, score and p_female {ANALYZE_TOL['score']:g}, age {ANALYZE_TOL['age']:g} y; "
        f"demo decisions identical, confidence {CONFIDENCE_TOL:g}."
    )
    text = "\n".join(out) + "\n"
    (run_dir / "table.md").write_text(text)
    print(text)
    if failed:
        print("compare: MISMATCH: " + "; ".join(failed), file=sys.stderr)
        return 1
    print("compare: every arm64 result matches x86 within the stated tolerances")
    return 0


def doctor(doctor_json: Path, lgpio_txt: Path) -> int:
    report = json.loads(doctor_json.read_text())
    lgpio_says = lgpio_txt.read_text().strip().splitlines()[-1:] if lgpio_txt.is_file() else []
    if lgpio_says:
        print(f"doctor: (lgpio.gpiochip_open in the root says: {lgpio_says[0]})")
    bad = []
    for check in report["checks"]:
        name, status, detail = check["name"], check["status"], check["detail"]
        if status in ("ok", "skip"):
            print(f"doctor: {status:4} {name}: {detail}")
            continue
        if name == "camera" and "stand-in" in detail:
            why = "python3-picamera2 is the stage's stand-in (no camera)"
        elif name.startswith("gpio") and ("stand-in" in detail or "unable to locate Pi revision" in detail):
            # gpiozero looks the board up in /proc/cpuinfo, which qemu-user writes itself (no Pi revision),
            # before it would reach python3-lgpio's stand-in
            why = "no Pi revision in qemu's /proc/cpuinfo, and python3-lgpio is the stage's stand-in (no GPIO chip)"
        elif name in ROOT_ONLY and status == "warn":
            why = ROOT_ONLY[name]
        elif name == "shelf" and status == "warn":
            why = "a fresh install has no products until the admin page adds them"
        elif name == "factors" and status == "warn":
            why = "no factor file installed yet (a fresh install ranks with the catalogue prior)"
        else:
            why = ""
        print(
            f"doctor: {status:4} {name}: {detail}"
            + (f"  [expected here: {why}]" if why else "  [UNEXPECTED]")
        )
        if not why:
            bad.append(name)
    if bad:
        print(f"doctor: unexpected problems in the arm64 root: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("doctor: only the stand-ins' camera/GPIO and the chroot's missing services are reported")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "table":
        return table(Path(argv[1]), argv[2:])
    if len(argv) == 3 and argv[0] == "doctor":
        return doctor(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
