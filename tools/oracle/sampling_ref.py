#!/usr/bin/python3
"""Goldens for host/sample/schedule.c and sampler.c.

An independent PyTorch rendering of the reference sources (not of vkdiff's C):
  - CompVis ldm/models/diffusion/ddpm.py register_schedule: the scaled-linear betas
  - k-diffusion external.py: DiscreteSchedule (sigma_to_t / t_to_sigma, get_sigmas),
    DiscreteEpsDDPMDenoiser / DiscreteVDDPMDenoiser forward
  - k-diffusion sampling.py: get_sigmas_karras, sample_euler, sample_euler_ancestral,
    sample_heun, sample_dpmpp_2m, sample_lcm
  - diffusers EulerDiscreteScheduler.set_timesteps, timestep_spacing="trailing"
  - A1111 modules/sd_samplers_timesteps.py (get_timesteps, the eps / v timestep
    denoisers) and sd_samplers_timesteps_impl.py (ddim)
  - A1111 / ComfyUI CFGDenoiser: uncond + (cond - uncond) * scale
The model is a toy analytic function (toy_model below; tests/test_sampling.c has the
same formula) and the noise comes from torch.randn on a seeded CPU generator: the
start noise first, then one randn per ancestral step from the same generator.

    /usr/bin/python3 tools/oracle/sampling_ref.py  ->  tests/data/sampling_golden.json
"""
import json
import math
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "sampling_golden.json")

SHAPE = (1, 4, 4, 4)
SEED = 42
CFG_SCALE = 5.0
STEPS = 4


# ---- CompVis register_schedule("linear", 1000, 0.00085, 0.012) --------------------------
def compvis_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    return torch.tensor(alphas_cumprod, dtype=torch.float32)   # registered as float32


# ---- k-diffusion external.py --------------------------------------------------------------
class DiscreteSchedule:
    def __init__(self, sigmas):
        self.sigmas = sigmas
        self.log_sigmas = sigmas.log()

    def get_sigmas(self, n):
        t_max = len(self.sigmas) - 1
        t = torch.linspace(t_max, 0, n)
        return torch.cat([self.t_to_sigma(t), torch.zeros(1)])

    def sigma_to_t(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def t_to_sigma(self, t):
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()


class EpsDenoiser(DiscreteSchedule):
    def __init__(self, inner, alphas_cumprod):
        super().__init__(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
        self.inner = inner

    def __call__(self, x, sigma, cond):
        c_out, c_in = -sigma, 1 / (sigma ** 2 + 1.0) ** 0.5
        eps = self.inner(x * c_in, self.sigma_to_t(sigma), cond)
        return x + eps * c_out


class VDenoiser(DiscreteSchedule):
    def __init__(self, inner, alphas_cumprod):
        super().__init__(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
        self.inner = inner

    def __call__(self, x, sigma, cond):
        c_skip = 1.0 / (sigma ** 2 + 1.0)
        c_out = -sigma * 1.0 / (sigma ** 2 + 1.0) ** 0.5
        c_in = 1 / (sigma ** 2 + 1.0) ** 0.5
        return self.inner(x * c_in, self.sigma_to_t(sigma), cond) * c_out + x * c_skip


class CFG:
    """k-diffusion-style guidance on the denoised outputs (A1111 / ComfyUI CFGDenoiser)"""
    def __init__(self, model, scale):
        self.model, self.scale = model, scale

    def __call__(self, x, sigma):
        uncond = self.model(x, sigma, 0.0)
        cond = self.model(x, sigma, 1.0)
        return uncond + (cond - uncond) * self.scale


# ---- the toy model ------------------------------------------------------------------------
def toy_model(x_in, t, c):
    """out[k] = 0.8 tanh(0.6 x_in[k] + 0.25 sin(0.37 k + 1.3 c)) + 0.1 x_in[k] cos(0.002 t) + 0.05 c
    (k: flat index; c: 1 for the conditional pass, 0 for the unconditional one)"""
    k = torch.arange(x_in.numel(), dtype=torch.float32).view(x_in.shape)
    t = torch.as_tensor(t, dtype=torch.float32)
    return (0.8 * torch.tanh(0.6 * x_in + 0.25 * torch.sin(0.37 * k + 1.3 * c))
            + 0.1 * x_in * torch.cos(0.002 * t) + 0.05 * c)


# ---- schedules ----------------------------------------------------------------------------
def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, torch.zeros(1)])


def get_sigmas_trailing(n, alphas_cumprod):
    """diffusers EulerDiscreteScheduler.set_timesteps with timestep_spacing="trailing" """
    step_ratio = 1000 / n
    timesteps = np.round(np.arange(1000, 0, -step_ratio)).astype(np.int64) - 1
    sigmas = np.array(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
    sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
    return torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))


def a1111_ddim_timesteps(steps):
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


# ---- k-diffusion sampling.py --------------------------------------------------------------
def to_d(x, sigma, denoised):
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def sample_euler(model, x, sigmas, noise):
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i] * (0.0 + 1)            # s_churn = 0
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def sample_euler_ancestral(model, x, sigmas, noise):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1])
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise() * 1.0 * sigma_up
    return x


def sample_heun(model, x, sigmas, noise):
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i] * (0.0 + 1)
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1])
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


def sample_dpmpp_2m(model, x, sigmas, noise):
    sigma_fn = lambda t: t.neg().exp()
    t_fn = lambda sigma: sigma.log().neg()
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_lcm(model, x, sigmas, noise):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise()
    return x


# ---- A1111 DDIM (timesteps sampler, eta = 0) ------------------------------------------------
def a1111_ddim(model_eps, x, timesteps, alphas_cumprod, eta=0.0):
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * np.sqrt((1 - alphas_prev.numpy()) / (1 - alphas.numpy()) * (1 - alphas.numpy() / alphas_prev.numpy()))
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model_eps(x, timesteps[index].item() * s_in)
        a_t = alphas[index].item() * s_in
        a_prev = alphas_prev[index].item() * s_in
        sigma_t = sigmas[index].item() * s_in
        sqrt_one_minus_at = sqrt_one_minus_alphas[index].item() * s_in
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1. - a_prev - sigma_t ** 2).sqrt() * e_t
        x = a_prev.sqrt() * pred_x0 + dir_xt     # + sigma_t * randn: zero at eta = 0
    return x


def a1111_timestep_model(pred, alphas_cumprod, scale):
    """CompVisTimestepsDenoiser / CompVisTimestepsVDenoiser under CFG: returns eps"""
    sqrt_acp = torch.tensor(np.sqrt(alphas_cumprod.double().numpy()), dtype=torch.float32)
    sqrt_1m_acp = torch.tensor(np.sqrt(1.0 - alphas_cumprod.double().numpy()), dtype=torch.float32)

    def eps_of(x, t, c):
        out = toy_model(x, t[0], c)
        if pred == "v":
            ti = t.long()      # A1111: t.to(torch.int); torch 1.13 indexes with long only
            out = sqrt_acp[ti, None, None, None] * out + sqrt_1m_acp[ti, None, None, None] * x
        return out

    def model(x, t):
        uncond, cond = eps_of(x, t, 0.0), eps_of(x, t, 1.0)
        return uncond + (cond - uncond) * scale
    return model


SAMPLERS = {
    "euler": sample_euler,
    "euler_a": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm++2m": sample_dpmpp_2m,
    "lcm": sample_lcm,
}


def flat(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def main():
    torch.set_num_threads(1)
    acp = compvis_alphas_cumprod()
    sched = DiscreteSchedule(((1 - acp) / acp) ** 0.5)
    sigma_min, sigma_max = sched.sigmas[0].item(), sched.sigmas[-1].item()

    table_idx = [0, 1, 2, 10, 100, 250, 499, 500, 750, 998, 999]
    out = {
        "generated_by": "tools/oracle/sampling_ref.py",
        "table": {"index": table_idx,
                  "alphas_cumprod": [float(acp[i]) for i in table_idx],
                  "sigmas": [float(sched.sigmas[i]) for i in table_idx]},
    }

    ts = torch.tensor([0.0, 0.25, 0.5, 1.0, 10.75, 123.4, 500.0, 997.5, 998.9, 999.0])
    sg = torch.tensor([0.01, 0.0292, 0.03, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 14.6, 14.6146, 20.0])
    out["t_to_sigma"] = {"t": flat(ts), "sigma": flat(sched.t_to_sigma(ts))}
    out["sigma_to_t"] = {"sigma": flat(sg), "t": flat(sched.sigma_to_t(sg))}

    schedules = []
    for n in [1, 2, 3, 4, 7, 20]:
        schedules.append({"schedule": "discrete", "steps": n, "sigmas": flat(sched.get_sigmas(n))})
        schedules.append({"schedule": "karras", "steps": n,
                          "sigmas": flat(get_sigmas_karras(n, sigma_min, sigma_max))})
        schedules.append({"schedule": "trailing", "steps": n, "sigmas": flat(get_sigmas_trailing(n, acp))})
    out["schedules"] = schedules
    out["ddim_timesteps"] = [{"steps": n, "timesteps": [int(v) for v in a1111_ddim_timesteps(n)]}
                             for n in [1, 2, 3, 4, 7, 20, 30, 1000]]

    out["toy"] = {"shape": list(SHAPE), "seed": SEED, "cfg_scale": CFG_SCALE, "steps": STEPS, "rng": "cpu"}
    runs = []
    cases = [(s, sch, STEPS) for s in SAMPLERS for sch in ["discrete", "karras"]]
    cases += [("euler", "trailing", 1), ("lcm", "trailing", 1), ("euler_a", "trailing", 4), ("lcm", "trailing", 4)]
    for pred in ["eps", "v"]:
        wrapper = (EpsDenoiser if pred == "eps" else VDenoiser)(toy_model, acp)
        model = CFG(wrapper, CFG_SCALE)
        for name, schedule, steps in cases:
            if schedule == "discrete":
                sigmas = sched.get_sigmas(steps)
            elif schedule == "karras":
                sigmas = get_sigmas_karras(steps, sigma_min, sigma_max)
            else:
                sigmas = get_sigmas_trailing(steps, acp)
            g = torch.Generator().manual_seed(SEED)
            noise = torch.randn(SHAPE, generator=g)
            x = noise * sigmas[0]
            x = SAMPLERS[name](model, x, sigmas, lambda: torch.randn(SHAPE, generator=g))
            runs.append({"sampler": name, "schedule": schedule, "steps": steps, "prediction": pred, "x": flat(x)})
        for steps in [1, 4, 7]:
            g = torch.Generator().manual_seed(SEED)
            noise = torch.randn(SHAPE, generator=g)
            x = a1111_ddim(a1111_timestep_model(pred, acp, CFG_SCALE), noise, a1111_ddim_timesteps(steps), acp)
            runs.append({"sampler": "ddim", "schedule": "a1111", "steps": steps, "prediction": pred, "x": flat(x)})
    out["runs"] = runs

    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes), {len(runs)} runs")


if __name__ == "__main__":
    main()
