"""Test configuration: repository root on sys.path, access to ../shared reference data."""
import os
import sys
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore", message="No ccache found")

from utils.device import configure_cpu_math  # noqa: E402

configure_cpu_math()  # the scripts' math-library set-up, before any test imports Paddle


def shared_path(*parts):
    """Path of a file under ../shared, or skip the test with the reason when it is not there."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{os.path.join('..', 'shared', *parts)} not found (reference data beside the repository)")
    return path


def one_line_error(capsys, main, argv):
    """Run a script's ``main`` through ``run_main`` and return its error line, checking that it failed with
    exit status 2 and printed exactly one line starting with ``error: ``."""
    from utils.cli import run_main

    with pytest.raises(SystemExit) as err:
        run_main(main, argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def read_png(path, min_size=(20, 20)):
    """The PNG at ``path`` as an RGB uint8 array, checked to be at least ``min_size`` (h, w) and not blank."""
    import cv2
    import numpy as np

    assert os.path.isfile(path), path
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} is not a readable image"
    h, w = img.shape[:2]
    assert h >= min_size[0] and w >= min_size[1], (path, img.shape)
    assert img.std() > 10, f"{path} looks blank (pixel std {img.std():.1f})"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 16, f"{path} has almost no colours"
    return img[..., ::-1]


@pytest.fixture(autouse=True)
def _seed():
    import numpy as np
    import paddle

    paddle.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def sidd_lite(tmp_path_factory):
    """The lite SIDD-like data (tools/make_lite_data.py --task sidd), made once per test session."""
    from dataloaders.prepare.lite_data import make_sidd

    root = tmp_path_factory.mktemp("lite")
    make_sidd(str(root), seed=0)
    return root
