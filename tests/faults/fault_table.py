"""One row per injected fault; tests/conftest.py prints the table at the end of the run."""

FAULT_ROWS: list[dict] = []


def print_fault_table(terminalreporter) -> None:
    if not FAULT_ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("fault injection: faults injected, trials recorded, results lost, duplicate trials")
    write(f"{'fault':<44} {'expected':>8} {'recorded':>8} {'lost':>5} {'dupes':>5}  outcome")
    totals = [0, 0, 0, 0]
    for row in FAULT_ROWS:
        write(
            f"{row['fault']:<44} {row['expected']:>8} {row['recorded']:>8} {row['lost']:>5} "
            f"{row['duplicates']:>5}  {row['outcome']}"
        )
        for i, key in enumerate(("expected", "recorded", "lost", "duplicates")):
            totals[i] += row[key]
    write(
        f"{'TOTAL (' + str(len(FAULT_ROWS)) + ' faults)':<44} {totals[0]:>8} {totals[1]:>8} "
        f"{totals[2]:>5} {totals[3]:>5}"
    )
