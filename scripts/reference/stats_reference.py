"""Write reference values for the statistics of src/stats to tests/fixtures/stats/.

Inputs are generated with fixed numpy seeds and stored next to the expected values, so
the Rust tests read both from the same JSON file. Expected values come from scipy,
scikit-learn and statsmodels where they have the statistic. DeLong, Hosmer-Lemeshow,
the redundancy filter, Youden and the decision curve are written here in plain numpy.
DeLong uses its O(n^2) pairwise form, which is independent of the fast midrank algorithm.

Run with the pinned packages of scripts/requirements.txt:
    .venv/bin/python scripts/reference/stats_reference.py
"""

import json
import pathlib
import warnings

import numpy as np
import scipy.stats
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "stats"


def mann_whitney_cases():
    rng = np.random.default_rng(11)
    cases = {
        "exact_5_7": (rng.normal(0, 1, 5), rng.normal(1, 1, 7)),
        "exact_3_40": (rng.normal(1.5, 1, 3), rng.normal(0, 1, 40)),
        "exact_8_8": (rng.normal(0, 1, 8), rng.normal(0.8, 1, 8)),
        "small_with_ties": (
            rng.integers(0, 4, 6).astype(float),
            rng.integers(1, 5, 7).astype(float),
        ),
        "large_with_ties": (
            np.round(rng.normal(0, 1, 50), 1),
            np.round(rng.normal(0.3, 1, 60), 1),
        ),
        "large_continuous": (rng.normal(0, 1, 120), rng.normal(0.5, 2, 90)),
    }
    out = []
    for name, (x, y) in cases.items():
        result = scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
        out.append(
            {
                "name": name,
                "x": x.tolist(),
                "y": y.tolist(),
                "u": float(result.statistic),
                "p": float(result.pvalue),
            }
        )
    return out


def redundancy_filter(rho, threshold):
    kept = list(range(rho.shape[0]))
    while True:
        partners = [
            sum(1 for b in kept if b != a and abs(rho[a, b]) > threshold) for a in kept
        ]
        if not partners or max(partners) == 0:
            return kept
        kept.pop(int(np.argmax(partners)))


def spearman_case():
    rng = np.random.default_rng(12)
    n = 40
    base = rng.normal(0, 1, n)
    columns = [
        base,
        base + rng.normal(0, 0.05, n),
        np.round(base * 2 + rng.normal(0, 0.1, n)),
        rng.normal(0, 1, n),
        np.round(rng.normal(0, 1, n)),
        np.exp(base) + rng.normal(0, 0.02, n),
    ]
    matrix = np.column_stack(columns)
    rho = scipy.stats.spearmanr(matrix).statistic
    return {
        "columns": [c.tolist() for c in columns],
        "rho": rho.tolist(),
        "threshold": 0.9,
        "kept": redundancy_filter(rho, 0.9),
    }


def logistic_case():
    rng = np.random.default_rng(13)
    n = 120
    x = np.column_stack(
        [rng.normal(0, 1, n), rng.integers(0, 2, n).astype(float), rng.normal(50, 10, n)]
    )
    eta = -1.0 + 0.8 * x[:, 0] + 0.6 * x[:, 1] + 0.03 * (x[:, 2] - 50)
    y = rng.random(n) < 1 / (1 + np.exp(-eta))
    fit = sm.Logit(y.astype(float), sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=200)
    ci = fit.conf_int(alpha=0.05)
    return {
        "columns": [x[:, j].tolist() for j in range(x.shape[1])],
        "labels": y.tolist(),
        "coefficients": fit.params.tolist(),
        "std_errors": fit.bse.tolist(),
        "z": fit.tvalues.tolist(),
        "p_values": fit.pvalues.tolist(),
        "odds_ratio": np.exp(fit.params).tolist(),
        "ci_low": np.exp(ci[:, 0]).tolist(),
        "ci_high": np.exp(ci[:, 1]).tolist(),
        "log_likelihood": float(fit.llf),
    }


def glmnet_lambdas(x, y, count=100, ratio=None):
    n, p = x.shape
    lambda_max = np.max(np.abs(x.T @ (y - y.mean()))) / n
    if ratio is None:
        ratio = 0.01 if n < p else 1e-4
    return lambda_max * ratio ** (np.arange(count) / (count - 1))


def sklearn_lasso(x, y, lam):
    """Lasso logistic fit at lambda by scikit-learn's saga, C = 1 / (n * lambda).

    saga stops early on its intercept when every coefficient is zero, so there the
    closed-form optimum logit(mean y) is used. Every solution is checked against the
    lasso's optimality (KKT) conditions before it is written.
    """
    n = x.shape[0]
    model = LogisticRegression(
        l1_ratio=1.0,
        C=1.0 / (n * lam),
        solver="saga",
        tol=1e-12,
        max_iter=1_000_000,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    intercept, coef = float(model.intercept_[0]), model.coef_[0].copy()
    if not coef.any():
        intercept = float(np.log(y.mean() / (1 - y.mean())))
    check_kkt(x, y, lam, intercept, coef)
    return intercept, coef


def check_kkt(x, y, lam, intercept, coef, tolerance=1e-7):
    p = 1 / (1 + np.exp(-(intercept + x @ coef)))
    gradient = x.T @ (y - p) / len(y)
    assert abs((y - p).mean()) < tolerance, "intercept not optimal"
    active = coef != 0
    assert np.all(np.abs(gradient[active] - lam * np.sign(coef[active])) < tolerance * 10)
    assert np.all(np.abs(gradient[~active]) <= lam * (1 + tolerance))


def deviance(x, y, intercept, coef):
    eta = intercept + x @ coef
    return -2 * np.sum(y * eta - np.logaddexp(0, eta))


def glmnet_path(x, y, lambdas):
    """Fit along the path, stopping as glmnet's binomial path does: after at least 5
    lambdas, once the deviance ratio exceeds 0.999 or grows by less than 1e-5."""
    null = deviance(x, y, np.log(y.mean() / (1 - y.mean())), np.zeros(x.shape[1]))
    path = []
    previous = 0.0
    for k, lam in enumerate(lambdas):
        intercept, coef = sklearn_lasso(x, y, lam)
        path.append((intercept, coef))
        ratio = 1 - deviance(x, y, intercept, coef) / null
        if k + 1 >= 5 and (ratio > 0.999 or ratio - previous < 1e-5):
            break
        previous = ratio
    return path


def cv_deviance(x, y, folds, lambdas):
    """cv.glmnet's grouped binomial deviance: per-fold means, weighted by fold size.
    A fold path that stops early predicts with its last fit at the remaining lambdas."""
    k = folds.max() + 1
    means = np.zeros((k, len(lambdas)))
    sizes = np.zeros(k)
    for fold in range(k):
        train, test = folds != fold, folds == fold
        sizes[fold] = test.sum()
        path = glmnet_path(x[train], y[train], lambdas)
        for j in range(len(lambdas)):
            b0, b = path[min(j, len(path) - 1)]
            prob = np.clip(1 / (1 + np.exp(-(b0 + x[test] @ b))), 1e-5, 1 - 1e-5)
            dev = -2 * (y[test] * np.log(prob) + (1 - y[test]) * np.log(1 - prob))
            means[fold, j] = dev.mean()
    cvm = (means * sizes[:, None]).sum(0) / sizes.sum()
    cvsd = np.sqrt(((means - cvm) ** 2 * sizes[:, None]).sum(0) / sizes.sum() / (k - 1))
    return cvm, cvsd


def lasso_case():
    rng = np.random.default_rng(14)
    n, p = 80, 6
    raw = rng.normal(0, 1, (n, p))
    raw[:, 1] += 0.5 * raw[:, 0]
    eta = 0.3 + 1.2 * raw[:, 0] - 0.8 * raw[:, 2] + 0.4 * raw[:, 4]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    x = (raw - raw.mean(0)) / raw.std(0, ddof=1)
    lambdas = glmnet_lambdas(x, y, 100)
    full_path = glmnet_path(x, y, lambdas)
    # Every fifth lambda keeps the fixture small.
    checked = list(range(0, len(full_path), 5))
    path = [full_path[j] for j in checked]

    folds = np.zeros(n, dtype=int)
    for cls in (0.0, 1.0):
        members = rng.permutation(np.flatnonzero(y == cls))
        folds[members] = np.arange(len(members)) % 5
    cv_lambdas = lambdas[: len(full_path)]
    cvm, cvsd = cv_deviance(x, y, folds, cv_lambdas)
    index_min = int(np.flatnonzero(cvm <= cvm.min())[0])
    index_1se = int(np.flatnonzero(cvm <= cvm[index_min] + cvsd[index_min])[0])
    return {
        "columns": [x[:, j].tolist() for j in range(p)],
        "labels": (y == 1).tolist(),
        "lambdas": lambdas.tolist(),
        "path_length": len(full_path),
        "checked": checked,
        "intercepts": [b0 for b0, _ in path],
        "coefficients": [b.tolist() for _, b in path],
        "folds": folds.tolist(),
        "cv_mean": cvm.tolist(),
        "cv_std_error": cvsd.tolist(),
        "index_min": index_min,
        "index_1se": index_1se,
    }


def delong_pairwise(scores, labels):
    """O(n^2) DeLong: structural components from the kernel psi over all pairs."""
    pos = scores[labels]
    neg = scores[~labels]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10 = psi.mean(1)
    v01 = psi.mean(0)
    return psi.mean(), v10, v01


def roc_case():
    rng = np.random.default_rng(15)
    n = 150
    labels = rng.random(n) < 0.4
    first = np.round(labels * 0.9 + rng.normal(0, 1, n), 1)
    second = np.round(labels * 0.5 + 0.5 * first + rng.normal(0, 1, n), 1)
    out = {"labels": labels.tolist(), "first": first.tolist(), "second": second.tolist()}
    components = []
    for scores in (first, second):
        auc, v10, v01 = delong_pairwise(scores, labels)
        assert abs(auc - roc_auc_score(labels, scores)) < 1e-12
        components.append((v10, v01))
        var = v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01)
        half = 1.959963984540054 * np.sqrt(var)
        out.setdefault("auc", []).append(float(auc))
        out.setdefault("variance", []).append(float(var))
        out.setdefault("ci_low", []).append(float(max(0.0, auc - half)))
        out.setdefault("ci_high", []).append(float(min(1.0, auc + half)))
    (a10, a01), (b10, b01) = components
    m, k = len(a10), len(a01)
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    diff_var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / k
    z = (out["auc"][0] - out["auc"][1]) / np.sqrt(diff_var)
    out["delong_z"] = float(z)
    out["delong_p"] = float(2 * scipy.stats.norm.sf(abs(z)))
    out["youden"] = youden(first, labels)
    return out


def youden(scores, labels):
    m, n = labels.sum(), (~labels).sum()
    best = None
    for t in sorted(set(scores.tolist()), reverse=True):
        called = scores >= t
        tp = int((called & labels).sum())
        fp = int((called & ~labels).sum())
        j = tp * n - fp * m
        if best is None or j > best[0]:
            best = (j, t, tp, fp)
    _, t, tp, fp = best
    tn, fn = n - fp, m - tp
    return {
        "threshold": t,
        "sensitivity": tp / m,
        "specificity": tn / n,
        "accuracy": (tp + tn) / (m + n),
        "ppv": tp / (tp + fp),
        "npv": tn / (tn + fn),
    }


def hosmer_lemeshow(prob, labels, groups=10):
    breaks = np.unique(np.quantile(prob, np.linspace(0, 1, groups + 1), method="linear"))
    index = np.clip(np.searchsorted(breaks[1:], prob, side="left"), 0, len(breaks) - 2)
    chi2 = 0.0
    for g in range(len(breaks) - 1):
        member = index == g
        if not member.any():
            continue
        o1, e1 = labels[member].sum(), prob[member].sum()
        o0, e0 = member.sum() - o1, member.sum() - e1
        chi2 += (o1 - e1) ** 2 / e1 + (o0 - e0) ** 2 / e0
    df = len(breaks) - 1 - 2
    return {"chi2": float(chi2), "df": int(df), "p": float(scipy.stats.chi2.sf(chi2, df))}


def calibration_case():
    rng = np.random.default_rng(16)
    n = 200
    true_logit = rng.normal(-0.5, 1.2, n)
    labels = rng.random(n) < 1 / (1 + np.exp(-true_logit))
    # Overconfident predictions, partly rounded so some quantile bins hold ties.
    prob = 1 / (1 + np.exp(-(1.6 * true_logit + 0.3)))
    prob[:40] = np.round(prob[:40], 2).clip(0.01, 0.99)
    y = labels.astype(float)
    logits = np.log(prob / (1 - prob))
    slope_fit = sm.GLM(y, sm.add_constant(logits), family=sm.families.Binomial()).fit(
        tol=1e-13
    )
    citl_fit = sm.GLM(
        y, np.ones((n, 1)), family=sm.families.Binomial(), offset=logits
    ).fit(tol=1e-13)

    odds = np.arange(1, 100) / 100
    curve = []
    prevalence = y.mean()
    for t in odds:
        called = prob >= t
        tp = (called & labels).sum() / n
        fp = (called & ~labels).sum() / n
        curve.append(
            {
                "threshold": float(t),
                "net_benefit": float(tp - fp * t / (1 - t)),
                "treat_all": float(prevalence - (1 - prevalence) * t / (1 - t)),
            }
        )
    return {
        "probabilities": prob.tolist(),
        "labels": labels.tolist(),
        "hosmer_lemeshow": hosmer_lemeshow(prob, y),
        "slope": float(slope_fit.params[1]),
        "intercept": float(slope_fit.params[0]),
        "citl": float(citl_fit.params[0]),
        "decision_curve": curve,
    }


def special_case():
    chi2 = []
    for df in (1, 2, 3, 5, 8, 17, 40):
        for x in (0.01, 0.5, 1.0, 3.7, 8.0, 15.0, 30.0, 60.0, 120.0):
            chi2.append({"x": x, "df": df, "sf": float(scipy.stats.chi2.sf(x, df))})
    normal = [{"z": z, "sf": float(scipy.stats.norm.sf(z))} for z in (-6.0, -1.5, 0.0, 0.3, 1.96, 4.0, 9.0, 20.0)]
    return {"chi2_sf": chi2, "normal_sf": normal}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures = {
        "mann_whitney.json": mann_whitney_cases(),
        "spearman.json": spearman_case(),
        "logistic.json": logistic_case(),
        "roc.json": roc_case(),
        "calibration.json": calibration_case(),
        "special.json": special_case(),
        "lasso.json": lasso_case(),
    }
    for name, value in fixtures.items():
        (OUT / name).write_text(json.dumps(value, indent=1) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
