// Drives a ga-sync sandbox with Google's official Node.js GA4 clients over their REST fallback.
// Run by tests/test_node_clients.py: SANDBOX_HOST, SANDBOX_PORT, PROPERTY and START/END (dates)
// say where and what; prints one JSON object of what it saw, which the Python test checks
// against its own computation from the sandbox's event log.
'use strict';

const assert = require('node:assert/strict');
const {v1beta: adminV1beta} = require('@google-analytics/admin');
const {BetaAnalyticsDataClient} = require('@google-analytics/data');
const {PassThroughClient} = require('google-auth-library');

const options = {
  fallback: true, // REST (HTTP/1.1 + JSON) instead of gRPC
  protocol: 'http',
  apiEndpoint: process.env.SANDBOX_HOST,
  port: Number(process.env.SANDBOX_PORT),
  authClient: new PassThroughClient(), // no credentials: the sandbox needs none
};
const property = `properties/${process.env.PROPERTY}`;
const dateRanges = [{startDate: process.env.START, endDate: process.env.END}];

async function adminSteps(admin) {
  const seen = {};
  const [summaries] = await admin.listAccountSummaries({});
  seen.summaries = summaries.flatMap(s => s.propertySummaries.map(p => p.property));

  const [before] = await admin.listKeyEvents({parent: property});
  seen.before = before.map(k => k.eventName);

  const [created] = await admin.createKeyEvent({
    parent: property,
    keyEvent: {eventName: 'sign_up', countingMethod: 'ONCE_PER_SESSION'},
  });
  assert.match(created.name, new RegExp(`^${property}/keyEvents/\\d{11}$`));
  assert.equal(created.custom, true);
  seen.createdMethod = created.countingMethod;

  const [updated] = await admin.updateKeyEvent({
    keyEvent: {
      name: created.name,
      countingMethod: 'ONCE_PER_EVENT',
      defaultValue: {numericValue: 12.5, currencyCode: 'EUR'},
    },
    updateMask: {paths: ['counting_method', 'default_value']},
  });
  seen.updated = {
    method: updated.countingMethod,
    value: updated.defaultValue.numericValue,
    currency: updated.defaultValue.currencyCode,
  };
  const [got] = await admin.getKeyEvent({name: created.name});
  assert.equal(got.countingMethod, 'ONCE_PER_EVENT');

  try {
    await admin.createKeyEvent({parent: property, keyEvent: {eventName: 'sign_up', countingMethod: 'ONCE_PER_EVENT'}});
    seen.duplicate = 'accepted';
  } catch (err) {
    seen.duplicate = err.code; // over REST the Node client reports the HTTP status: 409
  }
  const [during] = await admin.listKeyEvents({parent: property});
  seen.during = during.map(k => k.eventName);
  await admin.deleteKeyEvent({name: created.name});
  const [after] = await admin.listKeyEvents({parent: property});
  seen.after = after.map(k => k.eventName);
  return seen;
}

async function dataSteps(data) {
  const seen = {};
  // paging: two rows a page until rowCount, with a filter, an order and totals
  const base = {
    property,
    dateRanges,
    dimensions: [{name: 'deviceCategory'}],
    metrics: [{name: 'sessions'}, {name: 'purchaseRevenue'}],
    dimensionFilter: {
      notExpression: {filter: {fieldName: 'country', stringFilter: {matchType: 'EXACT', value: 'Poland'}}},
    },
    orderBys: [{metric: {metricName: 'sessions'}, desc: true}],
    metricAggregations: ['TOTAL'],
    limit: 2,
  };
  const rows = [];
  let rowCount = null;
  let totals = null;
  for (let offset = 0; rowCount === null || offset < rowCount; offset += 2) {
    const [resp] = await data.runReport({...base, offset});
    rowCount = Number(resp.rowCount);
    totals = resp.totals[0].metricValues.map(v => Number(v.value));
    rows.push(...resp.rows.map(r => [r.dimensionValues[0].value, Number(r.metricValues[0].value)]));
  }
  seen.devicePages = rows;
  seen.deviceRowCount = rowCount;
  seen.deviceTotals = totals;

  const [batch] = await data.batchRunReports({
    property,
    requests: [
      {dateRanges, dimensions: [{name: 'sessionDefaultChannelGroup'}], metrics: [{name: 'sessions'}]},
      {dateRanges, dimensions: [{name: 'city'}], metrics: [{name: 'activeUsers'}],
        dimensionFilter: {filter: {fieldName: 'country', inListFilter: {values: ['Germany']}}}},
    ],
  });
  seen.channels = Object.fromEntries(batch.reports[0].rows.map(
    r => [r.dimensionValues[0].value, Number(r.metricValues[0].value)]));
  seen.germanCities = batch.reports[1].rows.map(r => r.dimensionValues[0].value).sort();

  const [meta] = await data.getMetadata({name: `${property}/metadata`});
  seen.metadata = [meta.dimensions.length, meta.metrics.length];

  try {
    await data.runReport({property: 'properties/777777', dateRanges, metrics: [{name: 'sessions'}]});
    seen.unknownProperty = 'answered';
  } catch (err) {
    seen.unknownProperty = err.code; // the HTTP status over REST: 403 PERMISSION_DENIED
  }
  return seen;
}

async function main() {
  const admin = new adminV1beta.AnalyticsAdminServiceClient(options);
  const data = new BetaAnalyticsDataClient(options);
  const out = {admin: await adminSteps(admin), data: await dataSteps(data)};
  await admin.close();
  await data.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(err => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
