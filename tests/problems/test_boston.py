"""Boston data: file integrity, the scikit-learn split reproduced, standardization, units."""
import numpy as np
import pytest
import torch

from problems import boston


def test_csv_checksum_shape_and_published_means():
    x, y, names = boston.load_csv()
    assert x.shape == (506, 13) and y.shape == (506,)
    assert names[0] == "CRIM" and names[-1] == "LSTAT"
    np.testing.assert_allclose(x[0], [0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98])
    assert y.mean() == pytest.approx(22.532806, abs=1e-6)
    assert x[:, 5].mean() == pytest.approx(6.284634, abs=1e-6)  # RM


def test_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_bytes(boston.CSV.read_bytes().replace(b"24\r\n", b"25\r\n", 1))
    with pytest.raises(ValueError, match="sha256"):
        boston.load_csv(bad)


def test_split_is_shufflesplit_of_random_state_123():
    train, test = boston.split_indices()
    assert len(train) == 354 and len(test) == 152
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(506))
    perm = np.random.RandomState(123).permutation(506)
    np.testing.assert_array_equal(test, perm[:152])
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return
    tr, te = train_test_split(np.arange(506), test_size=0.3, random_state=123)
    np.testing.assert_array_equal(train, tr)
    np.testing.assert_array_equal(test, te)


def test_standardized_with_train_statistics_and_mse_in_original_units():
    d = boston.load(torch.float64)
    assert d.x_train.shape == (354, 13) and d.y_test.shape == (152, 1)
    torch.testing.assert_close(d.x_train.mean(0), torch.zeros(13, dtype=torch.float64), atol=1e-12, rtol=0)
    assert d.y_train.mean().item() == pytest.approx(0, abs=1e-12)
    x, y, _ = boston.load_csv()
    train, test = boston.split_indices()
    y_test = (d.y_test.squeeze(1).numpy() * d.y_std + d.y_mean)
    np.testing.assert_allclose(y_test, y[test], rtol=1e-12)
    mean_pred = torch.zeros_like(d.y_test)  # predicting the training mean
    assert d.mse_original(mean_pred, d.y_test) == pytest.approx(((y[test] - y[train].mean()) ** 2).mean(), rel=1e-12)
