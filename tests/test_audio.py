"""Reading utterances of every subtype soundfile reads into the dataset's int16 windows."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from raylab.data.corpora.audio import load_utterance
from raylab.data.dataset import load_dataset
from raylab.errors import DataError
from raylab.data.prepare import prepare_iemocap, prepare_manifest
from tests.corpus_factory import SR, make_iemocap_corpus, wav_path

SUBTYPES = [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
            ("wav", "DOUBLE"), ("flac", "PCM_16"), ("flac", "PCM_24")]


def ramp() -> np.ndarray:
    """A half-second signal spanning almost full scale, quantised to int16 so every subtype holds it."""
    x = 0.9 * np.sin(2 * np.pi * 220 * np.arange(SR // 2) / SR)
    return np.round(x * 32768) / 32768


@pytest.mark.parametrize("suffix, subtype", SUBTYPES)
def test_every_subtype_is_stored_at_its_level(tmp_path, suffix, subtype):
    x = ramp()
    path = tmp_path / f"u.{suffix}"
    sf.write(path, x, SR, subtype=subtype)
    audio, problem = load_utterance(str(path), "u", resample=False)
    assert problem is None and audio.dtype == np.int16
    expected = np.round(x * 32768).astype(np.int16)
    assert (audio == expected).all()
    assert np.abs(audio).max() > 29_000  # not zeros, not near silence


def test_full_scale_float_is_clipped_by_one_step(tmp_path):
    sf.write(tmp_path / "u.wav", np.array([1.0, -1.0, 0.5, 0.0]), SR, subtype="FLOAT")
    audio, problem = load_utterance(str(tmp_path / "u.wav"), "u", resample=False)
    assert problem is None and audio.tolist() == [32767, -32768, 16384, 0]


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_beyond_full_scale_or_not_finite_is_refused(tmp_path, subtype):
    loud = ramp() * 2.5
    sf.write(tmp_path / "loud.wav", loud, SR, subtype=subtype)
    _, problem = load_utterance(str(tmp_path / "loud.wav"), "loud", resample=False)
    assert problem.reason == "out_of_range_audio"
    assert "peak at 2.25, beyond full scale [-1, 1]" in str(problem)
    nan = ramp()
    nan[[100, 200, 300]] = [np.nan, np.inf, -np.inf]
    sf.write(tmp_path / "nan.wav", nan, SR, subtype=subtype)
    _, problem = load_utterance(str(tmp_path / "nan.wav"), "nan", resample=False)
    assert problem.reason == "non_finite_audio"
    assert str(problem).endswith("nan.wav: 3 non-finite sample(s) (NaN or inf), the first at "
                                 "sample 100 (0.006 s)")


def test_float_wavs_through_the_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "f32.wav", ramp(), SR, subtype="FLOAT")
    sf.write(tmp_path / "a" / "f64.wav", ramp(), SR, subtype="DOUBLE")
    (tmp_path / "m.csv").write_text("path,speaker,valence,arousal\n"
                                    "a/f32.wav,s1,1,5\na/f64.wav,s2,3,3\n")
    summary = prepare_manifest(tmp_path / "m.csv", tmp_path / "data", workers=1)
    data = load_dataset(summary.path)
    expected = np.round(ramp() * 32768).astype(np.int16)
    for row in range(2):
        assert (data.audio[row, :len(expected)] == expected).all()

    sf.write(tmp_path / "a" / "f64.wav", ramp() * 1.5, SR, subtype="DOUBLE")
    with pytest.raises(DataError, match=r"^1 problem\(s\) .*f64\.wav: float samples peak at 1\.35"
                                        r".*nothing written") as err:
        prepare_manifest(tmp_path / "m.csv", tmp_path / "data2", workers=1)
    assert "\n" not in str(err.value) and not (tmp_path / "data2").exists()


def test_float_wav_through_the_iemocap_reader(tmp_path):
    root = make_iemocap_corpus(tmp_path / "corpus")
    wav = wav_path(root, "Ses01F_impro01_F000")
    x = 0.5 * np.sin(2 * np.pi * 300 * np.arange(int(1.5 * SR)) / SR)
    sf.write(wav, x, SR, subtype="FLOAT")
    data = load_dataset(prepare_iemocap(root, tmp_path / "data", workers=1).path)
    row = data.audio[data.utterance_id == "Ses01F_impro01_F000"][0]
    assert np.abs(row.astype(int)[:len(x)] - np.round(x * 32768)).max() <= 1
    assert 16_000 < np.abs(row).max() <= 16_384
