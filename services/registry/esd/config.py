"""Settings of a registry configured as an EU Member State (Decision 406/2009/EC).

Environment names start with ``ESD_``; lists are JSON (``'["a","c"]'``) or comma-separated
(``a,c``). Values the reference data does not verify are settable here and reported as
"set by operator (unverified)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.registry.esd.domain import Article55Condition, MemberStateProfile
from services.registry.esd.reference import ReferenceData
from shared.bounds import MAX_UNITS
from shared.service import comma_or_json_list

SET_BY_OPERATOR = "set by operator (unverified)"
NOT_SET = "not set"
DECLARED = "declared by the Member State"


class EsdSettings(BaseSettings):
    """ESD_ENABLED, ESD_MEMBER_STATE, ESD_2005_EMISSIONS, ESD_ANNEX_II_LIMIT_PERCENT,
    ESD_ANNEX_III, ESD_ARTICLE_5_5_CONDITIONS, ESD_TEMPORARY_CREDITS_USED_2008_2012,
    ESD_INTERNATIONAL_AGREEMENT_CONCLUDED, ESD_AGREEMENT_RATIFIED_BY, ESD_LDC_AGREEMENTS,
    ESD_SIDS_INCLUDE_TERRITORIES."""

    model_config = SettingsConfigDict(env_prefix="ESD_", extra="ignore", populate_by_name=True)

    enabled: bool = Field(default=False, description="run this registry as an EU Member State")
    member_state: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$",
        description="code in the reference data (GR, GB); the registry code by default")
    emissions_2005: int | None = Field(
        default=None, ge=0, le=MAX_UNITS,
        validation_alias=AliasChoices("ESD_2005_EMISSIONS", "emissions_2005"),
        description="2005 effort-sharing emissions, t CO2e (not in the reference data)")
    annex_ii_limit_percent: int | None = Field(
        default=None, ge=-100, le=100,
        description="overrides the reference data's Annex II limit (e.g. HU, unconfirmed)")
    annex_iii: bool | None = Field(
        default=None, description="listed in Annex III; unknown (treated as not) by default")
    article_5_5_conditions: Annotated[list[Article55Condition], NoDecode] = Field(
        default_factory=list, description="which of the four conditions of Art. 5(5) hold")
    temporary_credits_used_2008_2012: bool = Field(
        default=False, description="the state used tCERs/lCERs in 2008-2012 (Art. 5(1)(d))")
    international_agreement_concluded: bool = Field(
        default=False, description="Art. 5(3) applies: only credits from ratifying states")
    agreement_ratified_by: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host countries that ratified it (Art. 5(3))")
    ldc_agreements: dict[str, date] = Field(
        default_factory=dict,
        description="LDC -> date it ratified an agreement with the EU (Art. 5(1)(c)), JSON")
    sids_include_territories: bool = Field(
        default=False, description="count M49 SIDS territories that are not UN members")

    @field_validator("article_5_5_conditions", "agreement_ratified_by", mode="before")
    @classmethod
    def _json_or_comma_list(cls, value: Any) -> Any:
        return comma_or_json_list(value)

    def profile(self, registry_code: str, reference: ReferenceData) -> ProfileSources:
        """The Member State profile and where each of its values comes from."""
        code = self.member_state or registry_code
        row = reference.member_states.get(code)
        sources: dict[str, SourcedValue] = {}

        def pick(name: str, configured: Any, from_data: Any, data_status: str) -> Any:
            if configured is not None:
                sources[name] = SourcedValue(configured, SET_BY_OPERATOR)
                return configured
            if from_data is not None:
                sources[name] = SourcedValue(from_data, f"reference data: {data_status}")
                return from_data
            sources[name] = SourcedValue(None, NOT_SET)
            return None

        verification = row.verification if row else "not a Member State in the reference data"
        emissions = pick("emissions_2005", self.emissions_2005,
                         row.emissions_2005 if row else None, verification)
        annex_ii = pick("annex_ii_limit_percent", self.annex_ii_limit_percent,
                        row.annex_ii_limit_percent if row else None, verification)
        annex_iii = pick("annex_iii", self.annex_iii, row.annex_iii if row else None,
                         verification)
        conditions = frozenset(self.article_5_5_conditions)
        sources["article_5_5_conditions"] = SourcedValue(sorted(conditions), DECLARED)
        sources["temporary_credits_used_2008_2012"] = SourcedValue(
            self.temporary_credits_used_2008_2012, DECLARED)
        profile = MemberStateProfile(
            code=code,
            emissions_2005=emissions,
            annex_ii_limit_percent=annex_ii,
            annex_iii=bool(annex_iii),
            article_5_5_conditions=conditions,
            temporary_credits_used_2008_2012=self.temporary_credits_used_2008_2012,
            international_agreement_concluded=self.international_agreement_concluded,
            agreement_ratified_by=frozenset(self.agreement_ratified_by),
            ldc_agreements=dict(self.ldc_agreements),
        )
        return ProfileSources(profile, sources, row.name if row else None,
                              row.sources if row else ())


@dataclass(frozen=True)
class SourcedValue:
    value: Any
    status: str


@dataclass(frozen=True)
class ProfileSources:
    """A profile with the provenance of its values, for the report."""

    profile: MemberStateProfile
    values: dict[str, SourcedValue]
    country_name: str | None
    reference_sources: tuple[str, ...]
