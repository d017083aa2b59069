"ImageNet preprocessing on the generated folder that the small scales' ImageNet runs train on."
import numpy as np, torch
from PIL import Image
from bnn_opt.data import IMAGENET_MEAN, IMAGENET_STD, center_crop_box, get_data, random_crop_box
from bnn_opt.repro.design import check_scale
from bnn_opt.repro.results import fake_imagenet


def _keys(d, a=-0.75):
    d = abs(d)
    return ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a


def _resize_by_hand(x, size):
    "TF1's legacy resize_bicubic from its definition (sample at j * n_in / size, Keys a = -0.75, edges repeated), float64."
    x, (H, W) = x.astype(np.float64), x.shape[-2:]
    def taps(n, j):
        at = j * n / size
        return [(min(max(int(at) + k, 0), n - 1), _keys(at - int(at) - k)) for k in (-1, 0, 1, 2)]
    out = [[sum(wy * wx * x[:, y, xx] for y, wy in taps(H, i) for xx, wx in taps(W, j)) for j in range(size)]
           for i in range(size)]
    return np.array(out).transpose(2, 0, 1)   # (size, size, C) -> (C, size, size)


def test_generated_imagenet_folder(tmp_path, scale='tiny'):
    "The first validation image against a hand computation; training batches normalised; crop bounds at its size."
    size = check_scale(scale)['imagenet']['image_size']
    root = fake_imagenet(tmp_path, scale)
    db = get_data('imagenet', data=root, image_size=size, batch_size=4, num_workers=0, seed=1)
    first = sorted((root / 'val' / db.classes[0]).iterdir())[0]
    pix = np.asarray(Image.open(first).convert('RGB')).transpose(2, 0, 1)
    top, left, side, _ = center_crop_box(*pix.shape[1:])
    want = (_resize_by_hand(pix[:, top:top + side, left:left + side], size)
            - 255 * np.array(IMAGENET_MEAN)[:, None, None]) / (255 * np.array(IMAGENET_STD)[:, None, None])
    xb, yb = next(iter(db.test))
    assert xb.shape == (4, 3, size, size) and xb.dtype == torch.float32 and yb[0] == 0
    np.testing.assert_allclose(xb[0].double().numpy(), want, atol=1e-4)
    xt, _ = next(iter(db.train))
    assert xt.shape == (4, 3, size, size) and torch.isfinite(xt).all()
    assert -3 < xt.min() and xt.max() < 3       # normalised: about [-2.1, 2.6] for pixels in 0-255, plus bicubic overshoot
    h, w = pix.shape[1:]
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        t, l, bh, bw = random_crop_box(h, w, generator=g)
        assert 0.1 <= bh * bw / (h * w) <= 1 and 3 / 4 - 0.5 / bh <= bw / bh <= 4 / 3 + 0.5 / bh
        assert t + bh <= h and l + bw <= w
