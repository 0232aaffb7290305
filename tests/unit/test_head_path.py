"""The head path is chosen once, and what each objective accepts follows from its losses' forms."""

from __future__ import annotations

import pytest
import torch

from src.losses.ce import CE
from src.losses.convex import CONVEX
from src.losses.emo import EMO
from src.losses.forms import LossForms, common_impls
from src.losses.gem import GEM
from src.losses.head_outputs import HiddenStates, Logits
from src.losses.sequence_logps import SEQUENCE_LOGPS
from src.modules.backbones import tiny_llama
from src.modules.ce import CEModule
from src.modules.convex import ConvexModule
from src.modules.dpo import DPOModule
from src.modules.emo import EMOModule
from src.modules.gem import GEMModule
from src.modules.head_path import HiddenPath, LogitsPath, head_path
from src.modules.interleave import InterleaveModule

ALL = ("plain", "chunked", "cce", "liger")


def test_each_loss_offers_its_forms():
    assert CE.impls == ALL
    assert GEM.impls == EMO.impls == CONVEX.impls == ("plain", "chunked")  # a CE kernel gives only log p(y)
    assert SEQUENCE_LOGPS.impls == ("plain", "chunked", "cce")  # Liger's per-token backward is wrong (issue #968)


@pytest.mark.parametrize("cls, impls", [
    (CEModule, ALL), (GEMModule, ("plain", "chunked")), (EMOModule, ("plain", "chunked")),
    (ConvexModule, ("plain", "chunked")),  # its CE warm start has every form, the convex loss does not
    (DPOModule, ("plain", "chunked", "cce")), (InterleaveModule, ("plain", "chunked", "cce")),
])
def test_an_objective_accepts_what_all_its_losses_offer(cls, impls):
    assert cls.loss_impls == impls == common_impls(cls.losses)


def test_an_unoffered_impl_is_refused_at_configuration_naming_the_loss():
    with pytest.raises(ValueError, match=r"module.loss_impl='cce'.*GEMModule has no cce loss \(gem offers plain, "
                                         r"chunked; cce and liger are CE-only kernels\)"):
        GEMModule(model=None, optimizer=torch.optim.SGD, loss_impl="cce")
    with pytest.raises(ValueError, match=r"ConvexModule has no liger loss \(convex offers plain, chunked;"):
        ConvexModule(model=None, optimizer=torch.optim.SGD, loss_impl="liger")


def test_the_path_is_picked_once_in_configure_model(tokenizer):
    module = GEMModule(model=lambda: tiny_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2),
                       optimizer=torch.optim.SGD, loss_impl="auto", loss_chunk_size=5)
    assert module.head_path is None
    module.configure_model()
    assert isinstance(module.head_path, LogitsPath) and module.head_path.name == "plain"  # a toy vocabulary: plain
    chunked = CEModule(model=module.model_factory, optimizer=torch.optim.SGD, loss_impl="chunked", loss_chunk_size=5)
    chunked.configure_model()
    assert isinstance(chunked.head_path, HiddenPath) and (chunked.head_path.name, chunked.head_path.chunk_size) == (
        "chunked", 5)
    reference = chunked.head_path.for_reference()
    assert reference.gather_head and not chunked.head_path.gather_head


def test_head_path_names():
    assert [type(head_path(name)) for name in ALL] == [LogitsPath, HiddenPath, HiddenPath, HiddenPath]
    with pytest.raises(ValueError, match=r"module.loss_impl='auto'"):
        head_path("auto")  # auto is made concrete by the module, from the built backbone


def test_both_outputs_answer_the_same_questions():
    torch.manual_seed(0)
    hidden, weight = torch.randn(2, 6, 4, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    labels = torch.tensor([[-100, -100, 3, 4, 5, 1], [-100, 2, 8, 0, -100, -100]])
    logits = Logits(hidden @ weight.T, labels)
    chunked = HiddenStates(hidden, labels, weight, None, "chunked", 3)
    for name, expected in logits.diagnostics().items():
        torch.testing.assert_close(chunked.diagnostics()[name].double(), expected.double())
    torch.testing.assert_close(chunked.sequence_logps(), logits.sequence_logps())
    torch.testing.assert_close(chunked.mean_logit().double(), logits.mean_logit().double())
    torch.testing.assert_close(chunked.loss(GEM, beta=0.5), logits.loss(GEM, beta=0.5))
    assert "ce" not in logits.diagnostics(with_ce=False)


def test_a_loss_without_the_form_says_so():
    plain_only = LossForms("mine", plain=lambda logits, labels: logits.sum())
    out = HiddenStates(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.zeros(5, 3), None, "cce", 4)
    with pytest.raises(ValueError, match=r"the mine loss has no module.loss_impl='cce' form"):
        out.loss(plain_only)
