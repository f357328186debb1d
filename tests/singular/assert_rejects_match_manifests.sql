{{ config(tags=['conservation']) }}
{#- Conservation of every delivery (CONTRACT.md section 1): its manifest's counts add up
    (rows_in = valid + rejected) and each reason's count equals the rejected rows stored for
    it under rejects/. Fails with one row per delivery that disagrees. Rejected rows whose
    manifest is not written yet (the manifest is written last, so a file landing while
    dbt build runs) fail only once they are older than the lookback
    (var fact_orders_lookback_minutes) before this build started. -#}

with

manifests as (

    select * from {{ ref('stg_ingest__manifests') }}

),

rejects as (

    select * from {{ ref('stg_ingest__rejects') }}

),

stored as (

    select
        ingest_id,
        sum(case when reason = 'missing' then 1 else 0 end) as missing,
        sum(case when reason = 'invalid' then 1 else 0 end) as invalid,
        sum(case when reason = 'duplicate' then 1 else 0 end) as duplicate,
        count(*) as rejected,
        max(landed_at) as landed_at
    from rejects
    group by ingest_id

),

compared as (

    select
        manifests.rows_in,
        manifests.valid,
        manifests.rejected_missing,
        manifests.rejected_invalid,
        manifests.rejected_duplicate,
        coalesce(manifests.ingest_id, stored.ingest_id) as ingest_id,
        coalesce(stored.missing, 0) as stored_missing,
        coalesce(stored.invalid, 0) as stored_invalid,
        coalesce(stored.duplicate, 0) as stored_duplicate,
        coalesce(stored.rejected, 0) as stored_rejected
    from manifests
    full outer join stored
        on manifests.ingest_id = stored.ingest_id
    where
        manifests.ingest_id is not null
        or stored.landed_at < {{ unpublished_landing_settled() }}

),

final as (

    select * from compared
    where
        rows_in is null
        or rows_in != valid + rejected_missing + rejected_invalid + rejected_duplicate
        or rejected_missing != stored_missing
        or rejected_invalid != stored_invalid
        or rejected_duplicate != stored_duplicate

)

select * from final
