#!/usr/bin/python3
"""Goldens for the samplers and schedules of issue 27 (the reference side).

An independent PyTorch rendering of the reference sources (read, not copied, and not
vkdiff's C):
  - k-diffusion k_diffusion/sampling.py (crowsonkb/k-diffusion 4601bf0; sampling.py is
    byte-identical at ab527a9, the commit A1111 pins): get_sigmas_exponential,
    get_sigmas_polyexponential, sample_lms / linear_multistep_coeff, sample_dpm_2,
    sample_dpm_2_ancestral, sample_dpmpp_2s_ancestral, sample_dpmpp_sde,
    sample_dpmpp_2m_sde, sample_dpmpp_3m_sde
  - A1111 modules/sd_samplers_extra.py restart_sampler; modules/sd_samplers_kdiffusion.py
    KDiffusionSampler.get_sigmas (discard_next_to_last_sigma); modules/sd_schedulers.py
  - ComfyUI comfy/samplers.py (normal_scheduler, simple_scheduler, ddim_scheduler,
    beta_scheduler, kl_optimal_scheduler), comfy/model_sampling.py
    (ModelSamplingDiscrete: sigma table, .timestep, .sigma), comfy/extra_samplers/uni_pc.py
    (sample_unipc, UniPC.multistep_uni_pc_bh_update, UniPC.sample),
    comfy_extras/nodes_align_your_steps.py (NOISE_LEVELS, loglinear_interp)
The toy model, CFG, eps / v denoisers, k-diffusion DiscreteSchedule and the start-noise
convention are sampling_ref.py's. Every noise draw a sampler makes (noise_sampler(sigma,
sigma_next) or torch.randn_like) is torch.randn(SHAPE, generator=g) on the generator that
drew the start noise, in source order (no Brownian tree: torchsde is not available).

    /usr/bin/python3 tools/oracle/sampling_more.py  ->  tests/data/sampling_more_golden.json
"""
import json
import math
import os
import sys

import mpmath
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sampling_ref as sr  # noqa: E402
from sampling_ref import SHAPE, SEED, CFG_SCALE, to_d, get_ancestral_step, flat  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "data", "sampling_more_golden.json")
SCHED_STEPS = [1, 2, 3, 4, 7, 20]


# ==== ComfyUI comfy/model_sampling.py ModelSamplingDiscrete =================================
class ComfyModelSampling:
    """ComfyUI's sigma table: make_beta_schedule("linear") in float64 (torch.linspace(
    sqrt(0.00085), sqrt(0.012), 1000, dtype=float64) ** 2), alphas_cumprod =
    torch.cumprod(1 - betas) in float64, sigmas computed in float64 and stored .float().
    (k-diffusion / A1111 / sampling_ref: alphas_cumprod is registered as float32 first and
    the sigmas computed from it in float32; see notes for the size of the difference.)"""

    def __init__(self):
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        acp = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - acp) / acp) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        # nearest table index in log sigma (argmin), NOT k-diffusion's interpolated sigma_to_t
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape)

    def sigma(self, timestep):
        t = torch.clamp(timestep.float(), min=0, max=(len(self.sigmas) - 1))
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()


# ==== schedules ============================================================================
def get_sigmas_exponential(n, sigma_min, sigma_max):
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=1.0):
    ramp = torch.linspace(1, 0, n) ** rho
    sigmas = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def comfy_normal_scheduler(ms, steps, sgm=False):
    start = ms.timestep(ms.sigma_max)
    end = ms.timestep(ms.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start.item(), end.item(), steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start.item(), end.item(), steps)
    sigs = [float(ms.sigma(ts)) for ts in timesteps]
    if append_zero:
        sigs += [0.0]
    return torch.FloatTensor(sigs)


def comfy_simple_scheduler(ms, steps):
    ss = len(ms.sigmas) / steps
    sigs = [float(ms.sigmas[-(1 + int(x * ss))]) for x in range(steps)]
    return torch.FloatTensor(sigs + [0.0])


def comfy_ddim_scheduler(ms, steps):
    x = 1
    if math.isclose(float(ms.sigmas[x]), 0, abs_tol=0.00001):
        steps += 1
        sigs = []
    else:
        sigs = [0.0]
    ss = max(len(ms.sigmas) // steps, 1)
    while x < len(ms.sigmas):
        sigs += [float(ms.sigmas[x])]
        x += ss
    return torch.FloatTensor(sigs[::-1])


def beta_ppf(q, a, b):
    """scipy.stats.beta.ppf(q, a, b): the inverse of the regularized incomplete beta
    function I_x(a, b), here by bisection on mpmath.betainc(regularized=True) at 40
    digits until the bracket is below 1e-15 (the contract asks for 1e-12)."""
    q = mpmath.mpf(float(q))
    if q <= 0:
        return 0.0
    if q >= 1:
        return 1.0
    with mpmath.workdps(40):
        lo, hi = mpmath.mpf(0), mpmath.mpf(1)
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        while hi - lo > mpmath.mpf("1e-15"):
            mid = (lo + hi) / 2
            if mpmath.betainc(a, b, 0, mid, regularized=True) < q:
                lo = mid
            else:
                hi = mid
        return float((lo + hi) / 2)


def comfy_beta_scheduler(ms, steps, alpha=0.6, beta=0.6):
    total_timesteps = len(ms.sigmas) - 1
    ts = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(np.array([beta_ppf(q, alpha, beta) for q in ts]) * total_timesteps)
    sigs, last_t = [], -1
    for t in ts:
        if t != last_t:
            sigs += [float(ms.sigmas[int(t)])]
        last_t = t
    return torch.FloatTensor(sigs + [0.0])


def comfy_kl_optimal_scheduler(n, sigma_min, sigma_max):
    adj_idxs = torch.arange(n, dtype=torch.float).div_(n - 1)
    sigmas = adj_idxs.new_zeros(n + 1)
    sigmas[:-1] = (adj_idxs * math.atan(sigma_min) + (1 - adj_idxs) * math.atan(sigma_max)).tan_()
    return sigmas


AYS_COMFY = {   # ComfyUI comfy_extras/nodes_align_your_steps.py NOISE_LEVELS
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
}
AYS_A1111 = {   # A1111 modules/sd_schedulers.py get_align_your_steps_sigmas
    "SD1": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "SDXL": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def loglinear_interp(t_steps, num_steps):
    xs = np.linspace(0, 1, len(t_steps))
    ys = np.log(t_steps[::-1])
    new_xs = np.linspace(0, 1, num_steps)
    new_ys = np.interp(new_xs, xs, ys)
    return np.exp(new_ys)[::-1].copy()


def comfy_ays(model_type, steps):
    """AlignYourStepsScheduler.get_sigmas at denoise 1: steps + 1 points, the last set to 0"""
    sigmas = AYS_COMFY[model_type][:]
    if steps + 1 != len(sigmas):
        sigmas = loglinear_interp(sigmas, steps + 1)
    sigmas = sigmas[-(steps + 1):]
    sigmas[-1] = 0
    return torch.FloatTensor(sigmas)


def a1111_ays(model_type, n):
    """A1111 get_align_your_steps_sigmas: n points (sigma_min kept), then 0 appended"""
    sigmas = AYS_A1111[model_type][:]
    if n != len(sigmas):
        sigmas = np.append(loglinear_interp(sigmas, n), [0.0])
    else:
        sigmas.append(0.0)
    return torch.FloatTensor(sigmas)


def a1111_sgm_uniform(inner, n):
    """A1111 sd_schedulers.sgm_uniform: k-diffusion's interpolating sigma_to_t / t_to_sigma"""
    start = inner.sigma_to_t(torch.tensor(inner.sigmas[-1].item()))
    end = inner.sigma_to_t(torch.tensor(inner.sigmas[0].item()))
    sigs = [inner.t_to_sigma(ts) for ts in torch.linspace(start.item(), end.item(), n + 1)[:-1]]
    return torch.FloatTensor([float(s) for s in sigs] + [0.0])


def a1111_normal(inner, n):
    start = inner.sigma_to_t(torch.tensor(inner.sigmas[-1].item()))
    end = inner.sigma_to_t(torch.tensor(inner.sigmas[0].item()))
    sigs = [inner.t_to_sigma(ts) for ts in torch.linspace(start.item(), end.item(), n)]
    return torch.FloatTensor([float(s) for s in sigs] + [0.0])


def a1111_beta(n, sigma_min, sigma_max, alpha=0.6, beta=0.6):
    """A1111 sd_schedulers.beta_scheduler (opts beta_dist_alpha / beta_dist_beta, 0.6 / 0.6):
    ppf of 1 - linspace(0, 1, n) (endpoint included), mapped LINEARLY onto
    [sigma_min, sigma_max] (no table lookup, no rounding, no de-duplication), then 0"""
    timesteps = 1 - np.linspace(0, 1, n)
    timesteps = [beta_ppf(x, alpha, beta) for x in timesteps]
    sigmas = [sigma_min + (x * (sigma_max - sigma_min)) for x in timesteps]
    return torch.FloatTensor(sigmas + [0.0])


def a1111_kl_optimal(n, sigma_min, sigma_max):
    """A1111 sd_schedulers.kl_optimal: n + 1 points from sigma_max to sigma_min, no zero"""
    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    step_indices = torch.arange(n + 1)
    return torch.tan(step_indices / n * alpha_min + (1.0 - step_indices / n) * alpha_max)


# ==== samplers (k-diffusion sampling.py) =====================================================
# signature: f(model, x, sigmas, noise_sampler) with noise_sampler(sigma, sigma_next) -> randn


def linear_multistep_coeff(order, t, i, j):
    """k-diffusion integrates the Lagrange basis polynomial with scipy quad (epsrel 1e-4;
    its 21-point Gauss-Kronrod rule is exact for these degree <= 3 polynomials). Here the
    same polynomial is built and integrated exactly with numpy.polynomial in float64
    (t: the float32 sigmas as float64, as numpy promotes them inside quad)."""
    if order - 1 > i:
        raise ValueError(f"Order {order} too high for step {i}")
    P = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if j == k:
            continue
        P = P * np.polynomial.Polynomial([-float(t[i - k]), 1.0]) / (float(t[i - j]) - float(t[i - k]))
    I = P.integ()
    return float(I(float(t[i + 1])) - I(float(t[i])))


def sample_lms(model, x, sigmas, ns, order=4):
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        ds.append(d)
        if len(ds) > order:
            ds.pop(0)
        cur_order = min(i + 1, order)
        coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
        x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x


def sample_dpm_2(model, x, sigmas, ns, s_churn=0.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)   # s_tmin 0 <= sigma <= s_tmax inf
        eps = ns(sigmas[i], sigmas[i + 1]) * s_noise   # torch.randn_like(x): drawn every step, unused at gamma 0
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            x = x + eps * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            dt_1 = sigma_mid - sigma_hat
            dt_2 = sigmas[i + 1] - sigma_hat
            x_2 = x + d * dt_1
            denoised_2 = model(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * dt_2
    return x


def sample_dpm_2_ancestral(model, x, sigmas, ns, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            dt_1 = sigma_mid - sigmas[i]
            dt_2 = sigma_down - sigmas[i]
            x_2 = x + d * dt_1
            denoised_2 = model(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * dt_2
            x = x + ns(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def _sigma_fn(t):
    return t.neg().exp()


def _t_fn(sigma):
    return sigma.log().neg()


def sample_dpmpp_2s_ancestral(model, x, sigmas, ns, eta=1.0, s_noise=1.0):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (_sigma_fn(s) / _sigma_fn(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = model(x_2, _sigma_fn(s))
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + ns(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def sample_dpmpp_sde(model, x, sigmas, ns, eta=1.0, s_noise=1.0, r=1 / 2):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
            h = t_next - t
            s = t + h * r
            fac = 1 / (2 * r)
            # step 1
            sd, su = get_ancestral_step(_sigma_fn(t), _sigma_fn(s), eta)
            s_ = _t_fn(sd)
            x_2 = (_sigma_fn(s_) / _sigma_fn(t)) * x - (t - s_).expm1() * denoised
            x_2 = x_2 + ns(_sigma_fn(t), _sigma_fn(s)) * s_noise * su
            denoised_2 = model(x_2, _sigma_fn(s))
            # step 2
            sd, su = get_ancestral_step(_sigma_fn(t), _sigma_fn(t_next), eta)
            t_next_ = _t_fn(sd)
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (_sigma_fn(t_next_) / _sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d
            x = x + ns(_sigma_fn(t), _sigma_fn(t_next)) * s_noise * su
    return x


def sample_dpmpp_2m_sde(model, x, sigmas, ns, eta=1.0, s_noise=1.0, solver_type="midpoint"):
    old_denoised, h_last, h = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + ns(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


def sample_dpmpp_2m_sde_heun(model, x, sigmas, ns):
    return sample_dpmpp_2m_sde(model, x, sigmas, ns, solver_type="heun")


def sample_dpmpp_3m_sde(model, x, sigmas, ns, eta=1.0, s_noise=1.0):
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0 = h_1 / h
                r1 = h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = x + ns(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# ==== A1111 modules/sd_samplers_extra.py restart_sampler =====================================
def sample_restart(model, x, sigmas, ns, s_noise=1.0, restart_list=None):
    def heun_step(x, old_sigma, new_sigma):
        denoised = model(x, old_sigma)
        d = to_d(x, old_sigma, denoised)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, new_sigma)
            d_2 = to_d(x_2, new_sigma, denoised_2)
            x = x + (d + d_2) / 2 * dt
        return x

    steps = sigmas.shape[0] - 1
    if restart_list is None:
        if steps >= 20:
            restart_steps, restart_times = 9, 1
            if steps >= 36:
                restart_steps, restart_times = steps // 4, 2
            sigmas = sr.get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
            restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
        else:
            restart_list = {}
    restart_list = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart_list:
            restart_steps, restart_times, restart_max = restart_list[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                sigma_restart = sr.get_sigmas_karras(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item())[:-1]
                while restart_times > 0:
                    restart_times -= 1
                    step_list.extend(zip(sigma_restart[:-1], sigma_restart[1:]))
    last_sigma = None
    for old_sigma, new_sigma in step_list:
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + ns(old_sigma, last_sigma) * s_noise * (old_sigma ** 2 - last_sigma ** 2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x


# ==== ComfyUI comfy/extra_samplers/uni_pc.py =================================================
class SigmaConvert:
    def marginal_log_mean_coeff(self, sigma):
        return 0.5 * torch.log(1 / ((sigma * sigma) + 1))

    def marginal_alpha(self, t):
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t):
        return torch.sqrt(1. - torch.exp(2. * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t):
        log_mean_coeff = self.marginal_log_mean_coeff(t)
        log_std = 0.5 * torch.log(1. - torch.exp(2. * log_mean_coeff))
        return log_mean_coeff - log_std


def _unipc_bh_update(model_fn, ns, variant, x, model_prev_list, t_prev_list, t, order, use_corrector=True):
    """UniPC.multistep_uni_pc_bh_update with predict_x0=True, x_t=None"""
    t_prev_0 = t_prev_list[-1]
    lambda_prev_0 = ns.marginal_lambda(t_prev_0)
    lambda_t = ns.marginal_lambda(t)
    model_prev_0 = model_prev_list[-1]
    sigma_prev_0, sigma_t = ns.marginal_std(t_prev_0), ns.marginal_std(t)
    alpha_t = torch.exp(ns.marginal_log_mean_coeff(t))
    h = lambda_t - lambda_prev_0

    rks, D1s = [], []
    for i in range(1, order):
        t_prev_i = t_prev_list[-(i + 1)]
        model_prev_i = model_prev_list[-(i + 1)]
        lambda_prev_i = ns.marginal_lambda(t_prev_i)
        rk = ((lambda_prev_i - lambda_prev_0) / h)[0]
        rks.append(rk)
        D1s.append((model_prev_i - model_prev_0) / rk)
    rks.append(1.)
    rks = torch.tensor(rks)

    R, b = [], []
    hh = -h[0]
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial_i = 1
    B_h = hh if variant == "bh1" else torch.expm1(hh)
    for i in range(1, order + 1):
        R.append(torch.pow(rks, i - 1))
        b.append(h_phi_k * factorial_i / B_h)
        factorial_i *= (i + 1)
        h_phi_k = h_phi_k / hh - 1 / factorial_i
    R = torch.stack(R)
    b = torch.tensor(b)

    use_predictor = len(D1s) > 0
    if len(D1s) > 0:
        D1s = torch.stack(D1s, dim=1)
        rhos_p = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
    else:
        D1s = None
    if use_corrector:
        rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(R, b)

    model_t = None
    x_t_ = (sigma_t / sigma_prev_0)[:, None, None, None] * x - (alpha_t * h_phi_1)[:, None, None, None] * model_prev_0
    pred_res = torch.einsum("k,bkchw->bchw", rhos_p, D1s) if use_predictor else 0
    x_t = x_t_ - (alpha_t * B_h)[:, None, None, None] * pred_res
    if use_corrector:
        model_t = model_fn(x_t, t)
        corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], D1s) if D1s is not None else 0
        D1_t = model_t - model_prev_0
        x_t = x_t_ - (alpha_t * B_h)[:, None, None, None] * (corr_res + rhos_c[-1] * D1_t)
    return x_t, model_t


def sample_unipc(model, noise, sigmas, ns_unused=None, variant="bh1"):
    """comfy sample_unipc: x in VP scaling (noise / sqrt(1 + sigma_0^2)), the last sigma
    0 replaced by 0.001 (in place in ComfyUI), model_wrapper(model_type "noise",
    guidance "uncond") around predict_eps_sigma, UniPC(predict_x0=True, variant),
    multistep, order = min(3, len(timesteps) - 2), lower_order_final, and finally
    x / marginal_alpha(0.001)."""
    timesteps = sigmas.clone()
    if sigmas[-1] == 0:
        timesteps[-1] = 0.001
    ns = SigmaConvert()
    x = noise / torch.sqrt(1.0 + timesteps[0] ** 2.0)

    def eps_fn(x_in, sigma_in):       # predict_eps_sigma
        sigma = sigma_in.view(sigma_in.shape[:1] + (1,) * (x_in.ndim - 1))
        inp = x_in * ((sigma ** 2 + 1.0) ** 0.5)
        return (inp - model(inp, sigma_in)) / sigma

    def model_fn(x_in, t):            # data_prediction_fn, no thresholding
        noise_ = eps_fn(x_in, t)
        alpha_t, sigma_t = ns.marginal_alpha(t), ns.marginal_std(t)
        return (x_in - sigma_t[:, None, None, None] * noise_) / alpha_t[:, None, None, None]

    order = min(3, len(timesteps) - 2)
    steps = len(timesteps) - 1
    assert steps >= order
    upd = lambda x_, mpl, tpl, t, o, use_corrector: _unipc_bh_update(model_fn, ns, variant, x_, mpl, tpl, t, o, use_corrector)
    for step_index in range(steps):
        if step_index == 0:
            vec_t = timesteps[0].expand((x.shape[0]))
            model_prev_list = [model_fn(x, vec_t)]
            t_prev_list = [vec_t]
        elif step_index < order:
            init_order = step_index
            vec_t = timesteps[init_order].expand(x.shape[0])
            x, model_x = upd(x, model_prev_list, t_prev_list, vec_t, init_order, True)
            if model_x is None:
                model_x = model_fn(x, vec_t)
            model_prev_list.append(model_x)
            t_prev_list.append(vec_t)
        else:
            extra_final_step = 1 if step_index == steps - 1 else 0
            for step in range(step_index, step_index + 1 + extra_final_step):
                vec_t = timesteps[step].expand(x.shape[0])
                step_order = min(order, steps + 1 - step)     # lower_order_final
                use_corrector = step != steps
                x, model_x = upd(x, model_prev_list, t_prev_list, vec_t, step_order, use_corrector)
                for i in range(order - 1):
                    t_prev_list[i] = t_prev_list[i + 1]
                    model_prev_list[i] = model_prev_list[i + 1]
                t_prev_list[-1] = vec_t
                if step < steps:
                    if model_x is None:
                        model_x = model_fn(x, vec_t)
                    model_prev_list[-1] = model_x
    x = x / ns.marginal_alpha(timesteps[-1])
    return x


def sample_unipc_bh2(model, noise, sigmas, ns_unused=None):
    return sample_unipc(model, noise, sigmas, ns_unused, variant="bh2")


SAMPLERS = {
    "lms": sample_lms,
    "dpm2": sample_dpm_2,
    "dpm2_a": sample_dpm_2_ancestral,
    "dpm++2s_a": sample_dpmpp_2s_ancestral,
    "dpm++sde": sample_dpmpp_sde,
    "dpm++2m_sde": sample_dpmpp_2m_sde,
    "dpm++2m_sde_heun": sample_dpmpp_2m_sde_heun,
    "dpm++3m_sde": sample_dpmpp_3m_sde,
    "uni_pc": sample_unipc,
    "uni_pc_bh2": sample_unipc_bh2,
    "restart": sample_restart,
}
# A1111 sd_samplers_kdiffusion.py options {'discard_next_to_last_sigma': True}
DISCARD_PENULTIMATE = {"dpm2", "dpm2_a", "dpm++3m_sde"}


def a1111_sigmas(kind, steps, sched, discard):
    """KDiffusionSampler.get_sigmas: steps += 1 when discarding, build, then
    sigmas = cat(sigmas[:-2], sigmas[-1:])"""
    n = steps + (1 if discard else 0)
    if kind == "discrete":
        sigmas = sched.get_sigmas(n)
    else:
        sigmas = sr.get_sigmas_karras(n, sched.sigmas[0].item(), sched.sigmas[-1].item())
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


class Counted:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.model(x, sigma)


def main():
    torch.set_num_threads(1)
    acp = sr.compvis_alphas_cumprod()
    sched = sr.DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    sigma_min, sigma_max = sched.sigmas[0].item(), sched.sigmas[-1].item()
    ms = ComfyModelSampling()
    c_min, c_max = float(ms.sigma_min), float(ms.sigma_max)

    schedules = []
    for n in SCHED_STEPS:
        add = lambda name, s: schedules.append({"schedule": name, "steps": n, "sigmas": flat(s)})
        add("exponential", get_sigmas_exponential(n, sigma_min, sigma_max))
        add("polyexponential", get_sigmas_polyexponential(n, sigma_min, sigma_max, 1.0))
        add("sgm_uniform", comfy_normal_scheduler(ms, n, sgm=True))
        add("normal", comfy_normal_scheduler(ms, n, sgm=False))
        add("simple", comfy_simple_scheduler(ms, n))
        add("ddim_uniform", comfy_ddim_scheduler(ms, n))
        add("beta", comfy_beta_scheduler(ms, n))
        if n > 1:        # n = 1: ComfyUI divides 0 by n - 1 = 0 -> NaN (see notes)
            add("kl_optimal", comfy_kl_optimal_scheduler(n, c_min, c_max))
        add("ays", comfy_ays("SD1", n))
        add("ays_sdxl", comfy_ays("SDXL", n))

    # the A1111 renderings where they differ from ComfyUI's (extra, for reference)
    schedules_a1111 = []
    for n in SCHED_STEPS:
        add = lambda name, s: schedules_a1111.append({"schedule": name, "steps": n, "sigmas": flat(s)})
        add("sgm_uniform", a1111_sgm_uniform(sched, n))
        add("normal", a1111_normal(sched, n))
        add("kl_optimal", a1111_kl_optimal(n, sigma_min, sigma_max))
        add("beta", a1111_beta(n, sigma_min, sigma_max))
        add("ays", a1111_ays("SD1", n))
        add("ays_sdxl", a1111_ays("SDXL", n))

    runs = []
    for pred in ["eps", "v"]:
        wrapper = (sr.EpsDenoiser if pred == "eps" else sr.VDenoiser)(sr.toy_model, acp)
        cases = [(name, kind, steps, name in DISCARD_PENULTIMATE) for name in SAMPLERS
                 for kind in ["discrete", "karras"] for steps in ([4, 7, 20] if name == "restart" else [4, 7])]
        # ComfyUI's KSampler discards the penultimate sigma for uni_pc / uni_pc_bh2 too
        # (DISCARD_PENULTIMATE_SIGMA_SAMPLERS); these extra runs carry "discard_penultimate": true
        cases += [(name, kind, steps, True) for name in ["uni_pc", "uni_pc_bh2"]
                  for kind in ["discrete", "karras"] for steps in [4, 7]]
        for name, kind, steps, discard in cases:
            fn = SAMPLERS[name]
            sigmas = a1111_sigmas(kind, steps, sched, discard)
            g = torch.Generator().manual_seed(SEED)
            noise = torch.randn(SHAPE, generator=g)
            draws = [0]

            def ns(sigma, sigma_next):
                draws[0] += 1
                return torch.randn(SHAPE, generator=g)
            model = Counted(sr.CFG(wrapper, CFG_SCALE))
            x = fn(model, noise * sigmas[0], sigmas, ns)
            runs.append({"sampler": name, "schedule": kind, "steps": steps, "prediction": pred,
                         "discard_penultimate": discard,
                         "calls": model.calls, "noise_draws": draws[0],
                         "sigmas": flat(sigmas), "x": flat(x)})

    out = {"generated_by": "tools/oracle/sampling_more.py",
           "toy": {"shape": list(SHAPE), "seed": SEED, "cfg_scale": CFG_SCALE, "rng": "cpu",
                   "model": "sampling_ref.toy_model", "sigma_min": sigma_min, "sigma_max": sigma_max,
                   "comfy_sigma_min": c_min, "comfy_sigma_max": c_max},
           "notes": NOTES,
           "schedules": schedules, "schedules_a1111": schedules_a1111,
           "runs": [r for r in runs if r["discard_penultimate"] == (r["sampler"] in DISCARD_PENULTIMATE)],
           # uni_pc / uni_pc_bh2 with ComfyUI KSampler's discard (kept apart so that (sampler, schedule,
           # steps, prediction) stays a unique key in "runs")
           "runs_comfy_discard": [r for r in runs
                                  if r["discard_penultimate"] != (r["sampler"] in DISCARD_PENULTIMATE)]}
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes), "
          f"{len(schedules)} schedules, {len(out['runs'])} runs + {len(out['runs_comfy_discard'])}")


NOTES = {
    "provenance": (
        "k-diffusion: crowsonkb/k-diffusion fetched at 4601bf0; k_diffusion/sampling.py is identical at "
        "ab527a9 (A1111's pinned k-diffusion commit). A1111 (public-code index): sd_schedulers.py at 02b0092, "
        "sd_samplers_extra.py at 255da37, sd_samplers_kdiffusion.py only at pre-1.6 commits (7f20051, "
        "01a40c6) - the 1.10 get_sigmas / samplers_k_diffusion were read in a derivative that keeps them "
        "(see sampler_names.py). ComfyUI: the index's own comfyanonymous/ComfyUI entries for comfy/samplers.py "
        "(75e5d3d, 002aefa) and comfy/extra_samplers/uni_pc.py (03a08e8) are OLD versions; the current "
        "normal_scheduler / simple_scheduler / ddim_scheduler / beta_scheduler / kl_optimal_scheduler, "
        "KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS, the sigma-space sample_unipc (SigmaConvert, "
        "predict_eps_sigma) and BrownianTreeNoiseSampler(..., cpu=True) were read in verbatim copies of "
        "ComfyUI's files found in other repositories of the index (several agreeing copies each). "
        "comfy/model_sampling.py (005e370) and comfy_extras/nodes_align_your_steps.py (341667c) from the "
        "ComfyUI entries. torchsde: google-research/torchsde fetched at eb3a00e."),
    "conventions": (
        "Toy model, CFG (uncond + (cond - uncond) * 5), eps / v denoisers (k-diffusion external.py "
        "DiscreteEpsDDPMDenoiser / DiscreteVDDPMDenoiser with the interpolating sigma_to_t), SHAPE, SEED and "
        "the start noise are sampling_ref.py's: g = torch.Generator().manual_seed(42), x = randn(SHAPE, g) * "
        "sigmas[0]; every later draw is randn(SHAPE, g) in source order. 'calls' counts CFG-denoiser calls "
        "(each one cond + one uncond toy evaluation); 'noise_draws' counts randn draws after the start noise; "
        "'sigmas' is the schedule the sampler was given (after the discard rule); 'steps' is the user's step "
        "count. sigma_min / sigma_max for exponential, polyexponential, karras, kl_optimal(A1111) are the "
        "k-diffusion float32 table's first / last entries (0.029167533, 14.614642)."),
    "discard_next_to_last_sigma": (
        "A1111 modules/sd_samplers_kdiffusion.py KDiffusionSampler.get_sigmas: for samplers whose options "
        "have 'discard_next_to_last_sigma' (DPM2, DPM2 a, DPM++ 3M SDE; also any sampler when the setting "
        "always_discard_next_to_last_sigma is on, which adds 'Discard penultimate sigma: True' to the "
        "infotext) it builds the schedule for steps + 1, then sigmas = cat(sigmas[:-2], sigmas[-1:]) (drops "
        "the smallest non-zero sigma), so the sampler still takes `steps` steps. Applied here to dpm2, dpm2_a, "
        "dpm++3m_sde on both schedules. ComfyUI differs: comfy/samplers.py KSampler.DISCARD_PENULTIMATE_"
        "SIGMA_SAMPLERS = {dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2} (same steps + 1 / cat rule, in "
        "KSampler.calculate_sigmas; read in copies of ComfyUI's KSampler) - it discards for uni_pc and NOT "
        "for dpmpp_3m_sde. The main uni_pc runs have no discard (the contract's rule); extra uni_pc / "
        "uni_pc_bh2 runs with discard_penultimate=true (top-level runs_comfy_discard) reproduce ComfyUI's KSampler."),
    "noise_draws_per_sampler": {
        "lms": "none",
        "dpm2": "1 per step, first thing in the step: eps = torch.randn_like(x) * s_noise is drawn "
                "unconditionally by k-diffusion sample_dpm_2 (4601bf0 / ab527a9) and only used when gamma > "
                "0; at s_churn = 0 it is unused, so the result does not depend on it (ComfyUI's copy of "
                "sample_dpm_2 not checked on this point)",
        "dpm2_a": "1 per step after the DPM-Solver-2 update, only when sigma_down != 0 (never on the final "
                  "step to 0): noise_sampler(sigmas[i], sigmas[i+1]) * s_noise * sigma_up",
        "dpm++2s_a": "1 per step at the end when sigmas[i+1] > 0: noise_sampler(sigmas[i], sigmas[i+1])",
        "dpm++sde": "2 per step except the final one: noise_sampler(sigma_fn(t), sigma_fn(s)) after the "
                    "first half step (before the second model call), then noise_sampler(sigma_fn(t), "
                    "sigma_fn(t_next)) at the end of the step",
        "dpm++2m_sde": "1 per step except the final (sigma_next = 0 -> x = denoised): noise_sampler(sigmas[i], "
                       "sigmas[i+1]) * sigmas[i+1] * sqrt(-expm1(-2 eta h)) after the update",
        "dpm++2m_sde_heun": "as dpm++2m_sde",
        "dpm++3m_sde": "as dpm++2m_sde (factor sqrt(-expm1(-2 h eta)))",
        "uni_pc": "none (deterministic)",
        "uni_pc_bh2": "none",
        "restart": "1 per restart jump: before the first step of a restart segment (last_sigma < old_sigma) "
                   "x += k_diffusion.sampling.torch.randn_like(x) * s_noise * sqrt(old^2 - last^2); with the "
                   "automatic restart_list: none below 20 steps, 1 at 20..35 steps, 2 from 36 steps"},
    "brownian_tree": (
        "What A1111 and ComfyUI use for the SDE samplers' noise. k-diffusion sampling.py: sample_dpmpp_sde, "
        "sample_dpmpp_2m_sde, sample_dpmpp_3m_sde default to BrownianTreeNoiseSampler(x, sigma_min, "
        "sigma_max) with sigma_min = sigmas[sigmas > 0].min(), sigma_max = sigmas.max(), transform identity "
        "(t = sigma); a call noise_sampler(sigma, sigma_next) returns tree(t0, t1) / sqrt(|t1 - t0|). "
        "BatchedBrownianTree builds one torchsde.BrownianTree(t0, w0, t1, entropy=seed) per seed, w0 = "
        "zeros (per-image shape when a list of seeds is given), and returns the increment with the sign of "
        "(t1 - t0); with no seed it draws one from torch.randint. torchsde (google-research/torchsde eb3a00e, "
        "torchsde/_brownian/derived.py BrownianTree) = BrownianInterval(t0, t1, size, dtype, device, "
        "entropy, tol=1e-6, pool_size=24, halfway_tree=True): numpy.random.SeedSequence(entropy, pool_size) "
        ".generate_state gives the seeds, each normal sample is torch.randn(size, generator=torch.Generator("
        "device).manual_seed(seed)) (brownian_interval.py _randn), the interval [t0, t1] is split at rounded "
        "halfway points down to tol with Brownian-bridge samples, children seeded by spawning SeedSequences. "
        "A1111 (sd_samplers_kdiffusion.py / sd_samplers_common create_noise_sampler, options "
        "'brownian_noise'): BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=the batch's p.all_seeds "
        "list) unless the setting no_dpmpp_sde_batch_determinism is on (then k-diffusion's own sampler with "
        "a random seed); x lives on the GPU there, so torchsde uses the CUDA generator (Philox). ComfyUI "
        "(comfy/k_diffusion/sampling.py): seed = extra_args['seed'] (the KSampler noise seed, one int, so one "
        "tree of the full batch shape), BrownianTreeNoiseSampler(..., cpu=True) so the tree runs on the CPU "
        "generator; the *_gpu sampler names use cpu=False. Reproducible without torchsde? In principle yes: "
        "it needs numpy's SeedSequence hashing (a fixed, documented algorithm), torch's randn for the tree's "
        "device (CPU mt19937 for ComfyUI, CUDA Philox for A1111 on GPU), and BrownianInterval's exact "
        "traversal, rounding of midpoints and bridge formulas in the same float order - a sizeable port, not "
        "done here (torchsde is not installed, so nothing could be checked). These goldens therefore use the "
        "plain per-step noise described above; the SDE results will NOT match A1111 / ComfyUI images for the "
        "same seed."),
    "comfy_table_vs_kdiffusion": (
        "ComfyUI comfy/model_sampling.py ModelSamplingDiscrete: betas from make_beta_schedule('linear') in "
        "float64, alphas_cumprod = torch.cumprod(1 - betas) in float64, sigmas = ((1 - acp) / acp) ** 0.5 in "
        "float64 then .float(); k-diffusion / A1111 / sampling_ref register alphas_cumprod as float32 first and "
        "compute the sigmas in float32: 351 of 1000 entries differ, by <= 9.5e-7 absolute, <= 1.3e-5 relative "
        "(sigma_min 0.029167159 vs 0.029167533; sigma_max 14.614641 vs 14.614642). timestep(sigma) is the "
        "nearest table index (argmin |log sigma - log_sigmas|), not k-diffusion's interpolated sigma_to_t; "
        "sigma(t) interpolates log sigma like t_to_sigma but clamps t to [0, 999]. ComfyUI also feeds the "
        "UNet that nearest integer timestep (model_base apply_model: model_sampling.timestep(sigma)), where "
        "A1111 (quantize off by default) feeds the fractional t: a model-side difference the goldens do not "
        "follow (the toy denoiser here is k-diffusion's, fractional t). ComfyUI's karras / exponential take "
        "sigma_min / sigma_max from its own table. The ComfyUI schedules below use ComfyUI's table; "
        "schedules_a1111 holds A1111's renderings where they differ."),
    "start_noise": (
        "A1111: x = noise * sigmas[0] (sgm_noise_multiplier off by default; on: noise * sqrt(1 + sigma0^2)). "
        "ComfyUI: EPS.noise_scaling(sigma, noise, latent, max_denoise) = noise * sqrt(1 + sigma^2) when "
        "max_denoise (KSampler, full denoise with sigmas[0] ~ sigma_max) else noise * sigma. The goldens use "
        "noise * sigmas[0] for every sampler (contract)."),
    "schedules": {
        "exponential": "k-diffusion sampling.py get_sigmas_exponential: exp(linspace(log sigma_max, log "
                       "sigma_min, n)) then 0",
        "polyexponential": "k-diffusion get_sigmas_polyexponential, rho 1.0 (A1111 sd_schedulers.py "
                           "default_rho=1.0): exp(linspace(1, 0, n) ** rho * (log max - log min) + log min); "
                           "equal to exponential up to float rounding at rho 1",
        "sgm_uniform": "ComfyUI comfy/samplers.py normal_scheduler(sgm=True): timesteps = linspace("
                       "timestep(sigma_max) = 999, timestep(sigma_min) = 0, n + 1)[:-1], sigma(t) each, then 0. "
                       "A1111 sd_schedulers.sgm_uniform is the same with k-diffusion's sigma_to_t / t_to_sigma "
                       "on A1111's table (schedules_a1111; <= 2.7e-7 relative from ComfyUI's here)",
        "normal": "ComfyUI normal_scheduler(sgm=False): linspace(999, 0, n) (n + 1 points if sigma(end) ~ 0, "
                  "not the case for SD), sigma(t), then 0 - the last non-zero sigma is sigma_min. A1111 "
                  "normal_scheduler: same on its table (<= 1.3e-5 relative, the table difference)",
        "simple": "ComfyUI simple_scheduler: ss = 1000 / n; sigmas[-(1 + int(x * ss))] for x < n, then 0 "
                  "(A1111 sd_schedulers.simple_scheduler: the same on A1111's table, so it differs only by "
                  "the table rounding, <= 1.3e-5 relative; not listed separately)",
        "ddim_uniform": "ComfyUI ddim_scheduler: ss = max(1000 // n, 1); sigmas[1], sigmas[1 + ss], ... while "
                        "index < 1000, reversed, then 0 (ComfyUI starts the list with 0.0 unless sigmas[1] ~ "
                        "0). The length is NOT always n: 7 steps give 8 non-zero sigmas (1000 // 7 = 142 -> "
                        "indices 1..995), 1 step gives [sigmas[1], 0]; A1111's 'DDIM' scheduler (sd_schedulers."
                        "ddim_scheduler) is the same list",
        "beta": "ComfyUI beta_scheduler(alpha=0.6, beta=0.6): ts = 1 - linspace(0, 1, n, endpoint=False); "
                "t = rint(beta.ppf(ts, 0.6, 0.6) * 999); consecutive duplicates of t dropped; sigmas[int(t)]; "
                "then 0. scipy.stats.beta.ppf replaced by beta_ppf here: bisection on mpmath.betainc("
                "regularized=True) at 40 digits to a bracket < 1e-15 (the contract asks 1e-12); rint after "
                "* 999 makes the result insensitive to that. No duplicates occur for n <= 20 here. A1111's "
                "beta_scheduler differs completely (schedules_a1111): 1 - linspace(0, 1, n) WITH the "
                "endpoint, ppf mapped linearly to sigma_min + x * (sigma_max - sigma_min), no table lookup",
        "kl_optimal": "ComfyUI kl_optimal_scheduler(n, sigma_min, sigma_max) with ComfyUI's table min / max: "
                      "adj = arange(n) / (n - 1); tan(adj * atan(sigma_min) + (1 - adj) * atan(sigma_max)), "
                      "then 0. n = 1 divides 0 by 0 -> NaN in ComfyUI, so no n = 1 entry. A1111 kl_optimal "
                      "differs (schedules_a1111): n + 1 points with step_indices / n, the last one sigma_min, "
                      "NO zero appended, so the sampler never steps to 0",
        "ays": "ComfyUI comfy_extras/nodes_align_your_steps.py AlignYourStepsScheduler, model_type SD1, "
               "denoise 1: NOISE_LEVELS['SD1'] (10 decimals), loglinear_interp to n + 1 points unless n + 1 == "
               "11, then the LAST point (sigma_min) set to 0. A1111 sd_schedulers.get_align_your_steps_sigmas "
               "differs (schedules_a1111 'ays'): the 3-decimal table, interpolated to n points unless n == 11 "
               "(table as is), then 0 appended - so A1111 keeps 0.029 as the last non-zero sigma and ComfyUI "
               "does not; the two agree on no step count. vkdiff 'ays' = ComfyUI's here.",
        "ays_sdxl": "as ays with NOISE_LEVELS['SDXL'] (A1111: its SDXL table when shared.sd_model.is_sdxl)"},
    "samplers": {
        "lms": "k-diffusion sample_lms, order 4 (A1111 passes no order): coefficients of the Lagrange "
               "polynomial through the last min(i + 1, 4) sigmas integrated from sigmas[i] to sigmas[i+1]; "
               "k-diffusion uses scipy.integrate.quad(epsrel=1e-4) on the float32 sigmas (numpy array) - "
               "here numpy.polynomial exact integration in float64 (checked against mpmath.quad: 1e-15)",
        "dpm2": "k-diffusion sample_dpm_2, s_churn 0 (gamma 0, sigma_hat = sigma): Euler on the final step, "
                "else midpoint in log sigma: sigma_mid = exp(lerp(log sigma, log sigma_next, 0.5)); 2 calls per "
                "step but the last",
        "dpm2_a": "k-diffusion sample_dpm_2_ancestral, eta 1, s_noise 1: get_ancestral_step, DPM-Solver-2 to "
                  "sigma_down, then noise * sigma_up",
        "dpm++2s_a": "k-diffusion sample_dpmpp_2s_ancestral, eta 1, r = 1/2",
        "dpm++sde": "k-diffusion sample_dpmpp_sde, eta 1, s_noise 1, r = 1/2 (A1111 passes eta = "
                    "opts.eta_ancestral, default 1)",
        "dpm++2m_sde": "k-diffusion sample_dpmpp_2m_sde, solver_type midpoint, eta 1; final step x = denoised. "
                       "(ComfyUI's copy has been rewritten in half-log-SNR form, mathematically equal for "
                       "eps / v models; not compared bit for bit)",
        "dpm++2m_sde_heun": "the same, solver_type heun (A1111 'DPM++ 2M SDE Heun' options solver_type heun)",
        "dpm++3m_sde": "k-diffusion sample_dpmpp_3m_sde, eta 1",
        "uni_pc": "ComfyUI comfy/extra_samplers/uni_pc.py sample_unipc(variant bh1): timesteps = sigmas with a "
                  "final 0 replaced by 0.001; x = noise_in / sqrt(1 + sigma0^2) (VP scaling); SigmaConvert "
                  "(alpha = 1/sqrt(1 + sigma^2), lambda = log alpha - log std); model_wrapper(model_type "
                  "'noise', guidance 'uncond') around predict_eps_sigma (input * sqrt(sigma^2 + 1) fed to the "
                  "k-diffusion denoiser, eps = (input - denoised) / sigma); UniPC(predict_x0=True, "
                  "thresholding off).sample(method 'multistep', order = min(3, len(timesteps) - 2), "
                  "lower_order_final): step 0 evaluates only, steps 1..order-1 update at init_order with the "
                  "corrector, later steps at min(order, steps + 1 - step), the last step without corrector "
                  "(no model call); rhos_p = [0.5] at order 2, rhos_c = [0.5] at order 1, else "
                  "torch.linalg.solve; finally x / alpha(0.001). Calls = steps. This is ComfyUI's sampler on "
                  "A1111's model wrapper (fractional t). A1111's own 'UniPC' is a different, timestep-space "
                  "implementation (sd_samplers_timesteps) - not this one",
        "uni_pc_bh2": "the same with variant bh2 (B_h = expm1(hh) instead of hh); ComfyUI sample_unipc_bh2",
        "restart": "A1111 modules/sd_samplers_extra.py restart_sampler, restart_list None (automatic): below "
                   "20 steps plain Heun over the given sigmas (2 calls per step but the last); from 20 steps "
                   "restart_steps 9, restart_times 1 (from 36: steps // 4 and 2), the given schedule is "
                   "REPLACED by get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2], sigmas[0]) "
                   "(so discrete and karras inputs give the same run), restart_list {0.1: [restart_steps + 1, "
                   "restart_times, 2]} keyed by the index of the sigma nearest 0.1; after that step the "
                   "segment karras(restart_steps + 1, sigmas[min_idx], sigmas[max_idx])[:-1] (max_idx = "
                   "sigma nearest 2) is appended restart_times times; each jump back up adds noise (see "
                   "noise_draws_per_sampler). A1111's 'Restart' defaults to the karras scheduler."},
}

if __name__ == "__main__":
    main()
