import pytest


@pytest.fixture(scope="session")
def test_model():
    """The tiny random-weight model, fixed for the whole session (index manifests pin the weights)."""
    import torch

    import vtr

    torch.manual_seed(1234)
    # itm_trained: its random matching head stands in for a trained one, so the re-rank path can be tested
    return vtr.create_model("vtr_test", itm_trained=True)


@pytest.fixture(scope="session")
def test_model_folder(test_model, tmp_path_factory):
    """The same model saved in vtr's format, for subprocesses."""
    from vtr.models.checkpoint import save_vtr
    from vtr.models.registry import config_to_dict

    folder = tmp_path_factory.mktemp("model") / "vtr_test"
    save_vtr(test_model, folder, config_to_dict(test_model.cfg, architecture="vtr_test"))
    return folder
