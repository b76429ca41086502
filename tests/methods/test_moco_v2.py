"""`moco_v2`: InfoNCE against the memory bank by hand, the bank saved in the state dict, EMA key encoder."""

import pytest
import torch
import torch.nn.functional as F

from tests.methods.conftest import build, ema_moved, views

pytest.importorskip("lightly")


def test_query_against_key_and_bank_and_the_bank_takes_the_keys():
    method = build("moco_v2", "moco_v2.queue_size=8", "moco_v2.temperature=0.2")
    bank = method.criterion.memory_bank
    old = bank.bank.clone()
    before = [p.clone() for p in method.teacher.ema_parameters()]
    student = [p.detach().clone() for p in method.student.ema_parameters()]
    a, b = views()
    out, _ = method.loss_step([a, b], method.schedule(0))
    assert ema_moved(before, student, list(method.teacher.ema_parameters()), 0.99)
    q = F.normalize(method.student(a).float(), dim=1)
    with torch.no_grad():
        k = F.normalize(method.teacher(b).float(), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ old.T], dim=1) / 0.2
    assert torch.allclose(out.loss, (torch.logsumexp(logits, 1) - logits[:, 0]).mean(), atol=1e-5)
    assert torch.allclose(bank.bank[:4], k, atol=1e-6) and int(bank.bank_ptr) == 4  # enqueued by the loss
    assert {"criterion.memory_bank.bank", "criterion.memory_bank.bank_ptr"} <= method.state_dict().keys()
