import re, sys
def rows(path):
    out = {}
    for line in open(path, encoding="utf-8", errors="replace").read().replace("\r", "\n").splitlines():
        m = re.match(r"\s+(call|put)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)", line)
        if m and (m.group(1), float(m.group(2)), int(m.group(3))) not in out:
            o, k, d, mc, se, h, e = m.groups()
            out[(o, float(k), int(d))] = (float(e), 100 * float(se) / float(h))
    return out
logs = sys.argv[1:]
R = [rows(p) for p in logs]
for key in R[0]:
    print(f"{key[0]:4s} {key[1]:5.0f} {key[2]:3d} | " + " | ".join(f"{r[key][0]:+6.2f} ({r[key][1]:.1f})" if key in r else "-" for r in R))
print("within 2%: " + " | ".join(str(sum(abs(v[0]) <= 2 for v in r.values())) for r in R))
print("within 2%+2SE: " + " | ".join(str(sum(abs(v[0]) <= 2 + 2 * v[1] for v in r.values())) for r in R))
