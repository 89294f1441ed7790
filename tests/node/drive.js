// Drives a ga-sync sandbox with Google's official Node.js GA4 clients over their REST fallback.
// Run by tests/test_node_clients.py: SANDBOX_HOST, SANDBOX_PORT, PROPERTY and START/END (dates)
// say where and what; prints one JSON object of what it saw, which the Python test checks
// against its own computation from the sandbox's event log.
'use strict';

const assert = require('node:assert/strict');
const {v1beta: adminV1beta, v1alpha: adminV1alpha} = require('@google-analytics/admin');
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

// Goal machinery on v1alpha: event create rules and audiences, then who made them.
async function machinerySteps(alpha) {
  const seen = {};
  const [streams] = await alpha.listDataStreams({parent: property});
  const web = streams.find(s => s.type === 'WEB_DATA_STREAM');
  seen.streams = streams.map(s => s.type);
  const actor = {otherArgs: {headers: {'x-sandbox-actor': 'node@agency.example'}}};
  const [rule] = await alpha.createEventCreateRule({
    parent: web.name,
    eventCreateRule: {
      destinationEvent: 'quote_thank_you',
      sourceCopyParameters: true,
      eventConditions: [
        {field: 'event_name', comparisonType: 'EQUALS', value: 'page_view'},
        {field: 'page_location', comparisonType: 'CONTAINS', value: '/quote/thank-you'},
      ],
    },
  }, actor);
  assert.match(rule.name, new RegExp(`^${web.name}/eventCreateRules/\\d+$`));
  seen.ruleConditions = rule.eventConditions.map(c => [c.field, c.comparisonType, c.value]);
  const [rules] = await alpha.listEventCreateRules({parent: web.name});
  seen.rulesDuring = rules.map(r => r.destinationEvent);
  try {
    await alpha.createEventCreateRule({parent: web.name, eventCreateRule: {
      destinationEvent: '9bad', eventConditions: [{field: 'event_name', comparisonType: 'EQUALS', value: 'x'}]}});
    seen.badRule = 'accepted';
  } catch (err) {
    seen.badRule = err.code; // 400 over REST
  }
  await alpha.deleteEventCreateRule({name: rule.name});
  const [rulesAfter] = await alpha.listEventCreateRules({parent: web.name});
  seen.rulesAfter = rulesAfter.length;

  const count = {dimensionOrMetricFilter: {fieldName: 'eventCount',
    numericFilter: {operation: 'GREATER_THAN', value: {int64Value: 4}}}};
  const [audience] = await alpha.createAudience({
    parent: property,
    audience: {
      displayName: 'ga-sync: engaged_visit',
      description: 'Goal engaged_visit (ga-sync): sessions with at least 5 page views',
      membershipDurationDays: 30,
      eventTrigger: {eventName: 'engaged_visit', logCondition: 'AUDIENCE_MEMBERSHIP_RENEWED'},
      filterClauses: [{clauseType: 'INCLUDE', simpleFilter: {
        scope: 'AUDIENCE_FILTER_SCOPE_WITHIN_SAME_SESSION',
        filterExpression: {andGroup: {filterExpressions: [{orGroup: {filterExpressions: [
          {eventFilter: {eventName: 'page_view', eventParameterFilterExpression: {andGroup: {
            filterExpressions: [{orGroup: {filterExpressions: [count]}}]}}}}]}}]}},
      }}],
    },
  }, actor);
  seen.audienceTrigger = [audience.eventTrigger.eventName, audience.eventTrigger.logCondition];
  const [audiences] = await alpha.listAudiences({parent: property});
  seen.audiencesDuring = audiences.map(a => a.displayName);
  try {
    await alpha.updateAudience({audience: {name: audience.name, membershipDurationDays: 7},
      updateMask: {paths: ['membership_duration_days']}});
    seen.immutable = 'accepted';
  } catch (err) {
    seen.immutable = [err.code, /immutable/.test(err.message)];
  }
  await alpha.archiveAudience({name: audience.name});
  const [audiencesAfter] = await alpha.listAudiences({parent: property});
  seen.audiencesAfter = audiencesAfter.length;

  const [events] = await alpha.searchChangeHistoryEvents({account: process.env.ACCOUNT, pageSize: 10});
  seen.history = events.map(e => [e.changes[0].action, e.userActorEmail, e.changes[0].resource.split('/').slice(-2)[0]]);
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
  const alpha = new adminV1alpha.AnalyticsAdminServiceClient(options);
  const data = new BetaAnalyticsDataClient(options);
  const out = {admin: await adminSteps(admin), machinery: await machinerySteps(alpha),
    data: await dataSteps(data)};
  await admin.close();
  await alpha.close();
  await data.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(err => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
