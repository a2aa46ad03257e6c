import textwrap

import pytest

from deepclean.couplings import (
    Coupling,
    CouplingError,
    Registry,
    SubtractionProblem,
    default_registry,
    resolve,
)
from deepclean.couplings.files import read_couplings_file


class TestSixtyHz:
    def test_h1(self):
        resolved = resolve("H1", "60Hz")
        assert resolved.bands == ((55.0, 65.0),)
        assert len(resolved.witnesses) == 21
        assert "H1:PEM-CS_MAINSMON_EBAY_1_DQ" in resolved.witnesses
        assert all(w.startswith("H1:") for w in resolved.witnesses)
        assert sum("ASC-" in w for w in resolved.witnesses) == 20
        assert resolved.line_witness == "H1:PEM-CS_MAINSMON_EBAY_1_DQ"

    def test_l1(self):
        resolved = resolve("L1", ["60Hz"])
        assert resolved.bands == ((58.0, 62.0),)
        assert len(resolved.witnesses) == 18
        assert "L1:ASC-CHARD_Y_OUT_DQ" in resolved.witnesses
        assert "L1:ASC-CSOFT_Y_OUT_DQ" not in resolved.witnesses
        assert resolved.line_witness == "L1:PEM-CS_MAINSMON_EBAY_1_DQ"


def _registry():
    witnesses = ("PEM-A", "PEM-B")
    return Registry(
        [
            SubtractionProblem("low", "", {"H1": Coupling(10, 13, witnesses)}),
            SubtractionProblem(
                "high", "", {"H1": Coupling(55, 65, ("PEM-C", "PEM-A"))}
            ),
            SubtractionProblem(
                "clash", "", {"H1": Coupling(60, 70, witnesses)}
            ),
        ]
    )


class TestResolve:
    def test_combined_bands_sorted_and_witnesses_deduplicated(self):
        resolved = _registry().resolve("H1", ["high", "low"])
        assert resolved.bands == ((10, 13), (55, 65))
        assert resolved.problems == ("low", "high")
        assert resolved.witnesses == ("H1:PEM-A", "H1:PEM-B", "H1:PEM-C")

    def test_order_of_problems_does_not_change_channels(self):
        registry = _registry()
        a = registry.resolve("H1", ["high", "low"])
        b = registry.resolve("H1", ["low", "high"])
        assert a == b

    def test_overlapping_bands_rejected(self):
        with pytest.raises(CouplingError, match="overlap"):
            _registry().resolve("H1", ["high", "clash"])

    def test_unknown_problem_lists_valid_ones(self):
        with pytest.raises(CouplingError) as err:
            _registry().resolve("H1", ["120Hz"])
        assert "'120Hz'" in str(err.value)
        assert "clash, high, low" in str(err.value)

    def test_unknown_ifo_lists_valid_ones(self):
        with pytest.raises(CouplingError, match="'V1'.*H1"):
            _registry().resolve("V1", ["low"])

    def test_problem_without_this_ifo(self):
        with pytest.raises(CouplingError, match="'60Hz' has no coupling"):
            Registry(
                [
                    default_registry()["60Hz"],
                    SubtractionProblem(
                        "k", "", {"K1": Coupling(1, 2, ("X",))}
                    ),
                ]
            ).resolve("K1", ["60Hz"])

    def test_line_witness_shared_by_the_problems(self):
        mains = SubtractionProblem(
            "mains", "", {"H1": Coupling(118, 122, ("PEM-A",), "PEM-A")}
        )
        registry = Registry([*_registry()._problems.values(), mains])
        assert registry.resolve("H1", ["low"]).line_witness is None
        resolved = registry.resolve("H1", ["low", "mains"])
        assert resolved.line_witness == "H1:PEM-A"
        assert resolved.require_line_witness("the mains") == "H1:PEM-A"
        with pytest.raises(CouplingError) as error:
            registry.resolve("H1", ["low"]).require_line_witness("the mains")
        assert "the mains is the line witness" in str(error.value)
        assert "'H1.line_witness = CHANNEL'" in str(error.value)

    def test_different_line_witnesses_rejected(self):
        registry = Registry(
            [
                SubtractionProblem(
                    name, "", {"H1": Coupling(low, low + 2, ("A", "B"), line)}
                )
                for name, low, line in (("a", 10, "A"), ("b", 20, "B"))
            ]
        )
        with pytest.raises(CouplingError, match="different line witnesses"):
            registry.resolve("H1", ["a", "b"])

    def test_empty_problem_list(self):
        with pytest.raises(CouplingError, match="no subtraction problem"):
            resolve("H1", " , ")

    @pytest.mark.parametrize(
        "low, high, witnesses, message",
        [
            (65, 55, ("A",), "freq_low must be"),
            (55, 65, (), "no witnesses"),
            (55, 65, ("H1:A",), "IFO prefix"),
        ],
    )
    def test_invalid_coupling(self, low, high, witnesses, message):
        with pytest.raises(CouplingError, match=message):
            Coupling(low, high, witnesses)

    def test_line_witness_must_be_a_witness(self):
        with pytest.raises(CouplingError) as error:
            Coupling(55, 65, ("ASC-A", "ASC-B"), "PEM-MAINS")
        assert "line witness 'PEM-MAINS'" in str(error.value)
        assert "add it to the witnesses" in str(error.value)


COUPLING_FILE = textwrap.dedent(
    """
    [problem 120Hz]
    description = first mains harmonic
    H1.band = 118 122
    H1.witnesses =
        PEM-CS_MAINSMON_EBAY_1_DQ
        ASC-CHARD_P_INMON
    H1.line_witness = PEM-CS_MAINSMON_EBAY_1_DQ
    L1.band = 119 121
    L1.witnesses = PEM-CS_MAINSMON_EBAY_1_DQ, ASC-DHARD_P_OUT_DQ
    """
)


class TestCouplingFile:
    def test_read(self, tmp_path):
        path = tmp_path / "couplings.ini"
        path.write_text(COUPLING_FILE)
        (problem,) = read_couplings_file(path)
        assert problem.name == "120Hz"
        assert problem.description == "first mains harmonic"
        assert problem.couplings["H1"].band == (118.0, 122.0)
        assert (
            problem.couplings["H1"].line_witness == "PEM-CS_MAINSMON_EBAY_1_DQ"
        )
        assert problem.couplings["L1"].line_witness is None
        assert problem.couplings["L1"].witnesses == (
            "PEM-CS_MAINSMON_EBAY_1_DQ",
            "ASC-DHARD_P_OUT_DQ",
        )

    def test_combined_with_builtin_through_environment(
        self, tmp_path, monkeypatch
    ):
        path = tmp_path / "couplings.ini"
        path.write_text(COUPLING_FILE)
        monkeypatch.setenv("DEEPCLEAN_COUPLINGS", str(path))
        resolved = resolve("H1", "120Hz,60Hz")
        assert resolved.bands == ((55.0, 65.0), (118.0, 122.0))
        # the mains monitor is shared by both problems: listed once
        assert len(resolved.witnesses) == 21

    @pytest.mark.parametrize(
        "text, message",
        [
            ("[sixty]\nH1.band = 1 2\n", "must be named"),
            ("[problem x]\nH1.freq = 1 2\n", "unknown key 'H1.freq'"),
            ("[problem x]\nH1.band = 1 2\n", "lacks H1.witnesses"),
            ("[problem x]\nH1.band = 55\nH1.witnesses = A\n", "two freq"),
            ("[problem x]\ndescription = d\n", "no IFO coupling"),
            (
                "[problem x]\nH1.band = 1 2\nH1.witnesses = A\n"
                "H1.line_witness = B\n",
                r"\[problem x\] H1: line witness 'B' of band",
            ),
            ("[problem 60Hz]\nH1.band = 1 2\nH1.witnesses = A\n", "twice"),
        ],
    )
    def test_errors_name_the_problem(self, tmp_path, text, message):
        path = tmp_path / "bad.ini"
        path.write_text(text)
        with pytest.raises(CouplingError, match=message):
            default_registry(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(CouplingError, match="does not exist"):
            default_registry(tmp_path / "nope.ini")
